using System.Diagnostics;
using Grpc.Core;
using HookBroker.Protocol.V1;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Outcome = Polly.Outcome;

namespace HookBroker.Client.Internal;

/// <summary>
/// The retries and the circuit breaker around a client's raise attempts, as two Polly pipelines (a retry, a circuit
/// breaker), arranged so that a first attempt that succeeds, the common case, pays for neither pipeline's async machinery.
/// <para>
/// <b>Circuit breaker.</b> While the circuit is closed (<see cref="AdmitsDirectly"/>, read through Polly's
/// <see cref="CircuitBreakerStateProvider"/>), an attempt runs on its own and its outcome is then handed to the breaker
/// pipeline (<see cref="RecordAsync"/>): the breaker executes a callback that returns that outcome at once, so it counts
/// every success and transient failure, opens on the configured ratio, throughput and sampling window, and logs, exactly
/// as if the attempt had run inside it. When the circuit is not closed, the attempt runs inside the breaker pipeline
/// (<see cref="ThroughBreakerAsync"/>): the breaker fails it fast with <see cref="BrokenCircuitException"/>, or lets it
/// through as the half-open trial. An outcome that arrives while the circuit is no longer closed is not handed over: Polly
/// itself only counts such late outcomes in metrics it resets when the circuit closes.
/// </para>
/// <para>
/// <b>Retries.</b> After a transient failure (<see cref="ShouldRetry"/>), <see cref="RetryAsync"/> runs the retry
/// pipeline with that failure as its first attempt (its callback's first call returns the failure already known), so Polly
/// computes the same exponential, jittered delays for the same number of attempts, and logs each retry; every later
/// attempt goes through the circuit breaker as above.
/// </para>
/// </summary>
internal sealed class RaiseResilience
{
    private static readonly ResiliencePropertyKey<string> LabelKey = new("hookbroker.label");

    private readonly ResiliencePipeline<RaiseResponse>? retry;
    private readonly ResiliencePipeline<RaiseResponse>? breaker;
    private readonly CircuitBreakerStateProvider? breakerState;

    /// <param name="options">The client's retry and circuit breaker settings (Polly validates them here).</param>
    /// <param name="logger">Where retries and circuit changes are logged.</param>
    /// <param name="time">The clock for backoff delays and the breaker's windows.</param>
    public RaiseResilience(HookBrokerClientOptions options, ILogger logger, TimeProvider time)
    {
        var retryOptions = options.Retry;
        if (retryOptions.MaxRetryAttempts > 0)
        {
            retry = new ResiliencePipelineBuilder<RaiseResponse> { TimeProvider = time }.AddRetry(new RetryStrategyOptions<RaiseResponse>
            {
                ShouldHandle = static args => ValueTask.FromResult(RpcErrors.IsTransient(args.Outcome.Exception, args.Context.CancellationToken)),
                MaxRetryAttempts = retryOptions.MaxRetryAttempts,
                Delay = retryOptions.InitialDelay,
                MaxDelay = retryOptions.MaxDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = retryOptions.UseJitter,
                OnRetry = args =>
                {
                    ClientLog.RetryingRaise(
                        logger,
                        args.Context.Properties.GetValue(LabelKey, "?"),
                        (args.Outcome.Exception as RpcException)?.StatusCode.ToString() ?? "error",
                        args.AttemptNumber + 1,
                        args.RetryDelay);
                    return ValueTask.CompletedTask;
                },
            }).Build();
        }

        var breakerOptions = options.CircuitBreaker;
        if (breakerOptions.Enabled)
        {
            breakerState = new CircuitBreakerStateProvider();
            breaker = new ResiliencePipelineBuilder<RaiseResponse> { TimeProvider = time }.AddCircuitBreaker(new CircuitBreakerStrategyOptions<RaiseResponse>
            {
                ShouldHandle = static args => ValueTask.FromResult(RpcErrors.IsTransient(args.Outcome.Exception, args.Context.CancellationToken)),
                FailureRatio = breakerOptions.FailureRatio,
                MinimumThroughput = breakerOptions.MinimumThroughput,
                SamplingDuration = breakerOptions.SamplingDuration,
                BreakDuration = breakerOptions.BreakDuration,
                StateProvider = breakerState,
                OnOpened = args =>
                {
                    ClientLog.CircuitOpened(logger, args.BreakDuration);
                    return ValueTask.CompletedTask;
                },
                OnClosed = _ =>
                {
                    ClientLog.CircuitClosed(logger);
                    return ValueTask.CompletedTask;
                },
            }).Build();
        }
    }

    /// <summary>
    /// True when an attempt may run on its own (no circuit breaker, or its circuit is closed); its outcome then goes to
    /// <see cref="RecordAsync"/>. False: run it through <see cref="ThroughBreakerAsync"/>.
    /// </summary>
    public bool AdmitsDirectly => breakerState is null || breakerState.CircuitState == CircuitState.Closed;

    /// <summary>True when <paramref name="outcome"/> (a first attempt's) is a transient failure that <see cref="RetryAsync"/> retries.</summary>
    public bool ShouldRetry(Outcome<RaiseResponse> outcome, CancellationToken cancellationToken) =>
        retry is not null && RpcErrors.IsTransient(outcome.Exception, cancellationToken);

    /// <summary>
    /// Hands the outcome of an attempt that ran on its own (<see cref="AdmitsDirectly"/>) to the circuit breaker, which
    /// counts it as if the attempt had run inside it. Completes at once, unless the outcome opens the circuit (the breaker
    /// then runs its open callback first, as it does for an attempt inside it).
    /// </summary>
    public ValueTask RecordAsync(Outcome<RaiseResponse> outcome, CancellationToken cancellationToken)
    {
        if (breaker is null || breakerState!.CircuitState != CircuitState.Closed)
        {
            return ValueTask.CompletedTask; // see the class remarks: Polly would only count it in metrics reset at closing
        }

        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        var recorded = breaker.ExecuteOutcomeAsync(static (_, known) => new ValueTask<Outcome<RaiseResponse>>(known), context, outcome);
        if (recorded.IsCompleted)
        {
            recorded.GetAwaiter().GetResult();
            ResilienceContextPool.Shared.Return(context);
            return ValueTask.CompletedTask;
        }

        return RecordLateAsync(recorded, context);

        static async ValueTask RecordLateAsync(ValueTask<Outcome<RaiseResponse>> recorded, ResilienceContext context)
        {
            try
            {
                await recorded;
            }
            finally
            {
                ResilienceContextPool.Shared.Return(context);
            }
        }
    }

    /// <summary>
    /// An attempt inside the circuit breaker (used when the circuit is not closed): failed fast with
    /// <see cref="BrokenCircuitException"/> while it is open, or let through as the half-open trial.
    /// </summary>
    public async ValueTask<Outcome<RaiseResponse>> ThroughBreakerAsync<TState>(
        Func<TState, CancellationToken, ValueTask<Outcome<RaiseResponse>>> attempt, TState state, CancellationToken cancellationToken)
    {
        Debug.Assert(breaker is not null, "Only called when the circuit breaker is enabled.");
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        try
        {
            return await breaker.ExecuteOutcomeAsync(
                static (ctx, run) => run.Attempt(run.State, ctx.CancellationToken),
                context,
                (Attempt: attempt, State: state));
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    /// <summary>
    /// The remaining attempts of a raise whose first attempt failed transiently (<see cref="ShouldRetry"/>): the retry
    /// pipeline starts from <paramref name="first"/> (logging the retry, waiting its backoff), and each further attempt
    /// runs <paramref name="attempt"/> through the circuit breaker. Returns the last attempt's outcome.
    /// </summary>
    public async ValueTask<Outcome<RaiseResponse>> RetryAsync<TState>(
        string label,
        Outcome<RaiseResponse> first,
        Func<TState, CancellationToken, ValueTask<Outcome<RaiseResponse>>> attempt,
        TState state,
        CancellationToken cancellationToken)
    {
        Debug.Assert(retry is not null, "Only called when retries are enabled.");
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(LabelKey, label);
        try
        {
            return await retry.ExecuteOutcomeAsync(static (ctx, run) => run.NextAsync(ctx.CancellationToken), context, new RetryRun<TState>(this, first, attempt, state));
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    /// <summary>One attempt after the first: on its own while the circuit is closed (then recorded), else through the breaker.</summary>
    private async ValueTask<Outcome<RaiseResponse>> AttemptAsync<TState>(
        Func<TState, CancellationToken, ValueTask<Outcome<RaiseResponse>>> attempt, TState state, CancellationToken cancellationToken)
    {
        if (!AdmitsDirectly)
        {
            return await ThroughBreakerAsync(attempt, state, cancellationToken);
        }

        var outcome = await attempt(state, cancellationToken);
        await RecordAsync(outcome, cancellationToken);
        return outcome;
    }

    /// <summary>The attempts of one retried raise, as the retry pipeline calls for them: the first one is already known.</summary>
    private sealed class RetryRun<TState>(
        RaiseResilience owner, Outcome<RaiseResponse> first, Func<TState, CancellationToken, ValueTask<Outcome<RaiseResponse>>> attempt, TState state)
    {
        private bool firstTaken;

        public ValueTask<Outcome<RaiseResponse>> NextAsync(CancellationToken cancellationToken)
        {
            if (!firstTaken)
            {
                firstTaken = true;
                return new ValueTask<Outcome<RaiseResponse>>(first);
            }

            return owner.AttemptAsync(attempt, state, cancellationToken);
        }
    }
}
