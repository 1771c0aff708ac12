using System.Text.Json;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using HookBroker.Client.Internal;
using HookBroker.Protocol.V1;
using HookBroker.Wire;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Outcome = Polly.Outcome;
using BrokerApi = HookBroker.Protocol.V1.HookBroker;

namespace HookBroker.Client;

/// <summary>
/// The HookBroker client: one gRPC channel per instance, reused by every call (create one per broker, or per set of
/// broker nodes, and keep it, as with <c>HttpClient</c>), and a Polly pipeline (retry with backoff and jitter around a
/// circuit breaker) around each raise. With several <see cref="HookBrokerClientOptions.Addresses"/>, calls are spread
/// round-robin over the ready nodes and a retry goes to the next one. Thread-safe.
/// </summary>
public sealed class HookBrokerClient : IHookBrokerClient
{
    private readonly BrokerChannel channel;
    private readonly BrokerApi.HookBrokerClient broker;
    private readonly CallInvoker invoker;
    private readonly ResiliencePipeline<RaiseResponse> pipeline;
    private readonly HookBrokerClientOptions options;
    private readonly JsonSerializerOptions jsonOptions;
    private readonly TimeProvider time;
    private readonly RaiseStreamMultiplexer? multiplexer;

    /// <summary>
    /// Creates a client for the broker at <see cref="HookBrokerClientOptions.Address"/>, or for the nodes of
    /// <see cref="HookBrokerClientOptions.Addresses"/>.
    /// </summary>
    /// <param name="options">The client's settings; null for the defaults.</param>
    /// <param name="loggerFactory">Where retries and circuit changes are logged; null for none.</param>
    /// <param name="timeProvider">The clock for deadlines and backoff; null for the system clock.</param>
    public HookBrokerClient(HookBrokerClientOptions? options = null, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        this.options = options ?? new HookBrokerClientOptions();
        Validate(this.options);
        time = timeProvider ?? TimeProvider.System;
        jsonOptions = this.options.JsonSerializerOptions ?? ArgsConverter.DefaultRaiseOptions;
        loggerFactory ??= NullLoggerFactory.Instance;
        var addresses = BrokerAddresses.Effective(this.options.Address, this.options.Addresses);
        channel = BrokerChannel.Create(addresses, this.options.ConnectTimeout, loggerFactory);
        invoker = channel.Channel.CreateCallInvoker();
        broker = new BrokerApi.HookBrokerClient(invoker);
        var logger = loggerFactory.CreateLogger<HookBrokerClient>();
        pipeline = BuildPipeline(this.options, logger, time);
        if (this.options.Batching)
        {
            multiplexer = new RaiseStreamMultiplexer(invoker, RaiseUnaryAsync, addresses.Count, this.options.AttemptTimeout, time, logger);
        }
    }

    /// <summary>The generated client on this instance's channel, for the SDK's own streams (interest, batched raises).</summary>
    internal BrokerApi.HookBrokerClient Api => broker;

    /// <summary>This client's settings.</summary>
    internal HookBrokerClientOptions Options => options;

    /// <inheritdoc />
    public async ValueTask<RaiseResult> ExecuteEventAsync(
        string label, object? args = null, RaiseOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(label);
        var request = new RawRaiseRequest
        {
            Event = label,
            Args = ArgsConverter.ToStructBytes(args, jsonOptions),
            // Every raise carries a key, so a retry after a lost answer is never stored twice.
            IdempotencyKey = string.IsNullOrEmpty(options?.IdempotencyKey) ? IdempotencyKeys.New() : options.IdempotencyKey,
            OrderingKey = options?.OrderingKey ?? string.Empty,
            Source = this.options.Source ?? string.Empty,
        };
        var attemptTimeout = this.options.AttemptTimeout;
        if (options?.WaitTimeout is { } wait)
        {
            request.WaitTimeout = Duration.FromTimeSpan(wait);
            attemptTimeout += wait;
        }

        if (options is not null)
        {
            request.Headers.Add(options.Headers);
        }

        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(LabelKey, label);
        Outcome<RaiseResponse> outcome;
        try
        {
            // Outcome-based: a failed attempt is handed through the retry and breaker layers as a value, never thrown.
            outcome = await pipeline.ExecuteOutcomeAsync(
                static (ctx, state) => state.Self.RaiseOnceAsync(state.Request, state.Timeout, ctx.CancellationToken),
                context,
                (Self: this, Request: request, Timeout: attemptTimeout));
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }

        if (outcome.Exception is { } failure)
        {
            if (failure is RpcException or BrokenCircuitException)
            {
                throw RpcErrors.Map(failure, label, cancellationToken);
            }

            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }

        var response = outcome.Result!;
        var result = ToResult(response);
        if (result.Outcomes.Count > 0 && result.Outcomes.Any(o => o.Outcome is HookOutcome.Failed or HookOutcome.DeadLettered))
        {
            throw new HookFailedException(label, result);
        }

        return result;
    }

    /// <summary>Ends the shared raise streams and releases the channel. Calls in progress fail.</summary>
    public async ValueTask DisposeAsync()
    {
        if (multiplexer is not null)
        {
            await multiplexer.DisposeAsync();
        }

        channel.Dispose();
    }

    private static readonly ResiliencePropertyKey<string> LabelKey = new("hookbroker.label");

    /// <summary>One attempt; its failure is returned, not thrown (the pipeline is outcome-based).</summary>
    private ValueTask<Outcome<RaiseResponse>> RaiseOnceAsync(RawRaiseRequest request, TimeSpan timeout, CancellationToken cancellationToken)
    {
        // Batching: the attempt rides the shared RaiseStream with the raises of other callers. A raise too large for a
        // batch travels unary, where a size error is its own; so does every raise once a broker lacks RaiseStream.
        if (multiplexer is { IsSupported: true } && request.CalculateSize() is var size && RaiseStreamMultiplexer.Accepts(size))
        {
            return new ValueTask<Outcome<RaiseResponse>>(multiplexer.RaiseAsync(request, size, timeout, cancellationToken));
        }

        return new ValueTask<Outcome<RaiseResponse>>(RaiseUnaryAsync(request, timeout, cancellationToken));
    }

    private async Task<Outcome<RaiseResponse>> RaiseUnaryAsync(RawRaiseRequest request, TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            // gRPC deadlines are absolute times on the system clock (the transport compares them with it), so the
            // injected TimeProvider, which may be fake in tests, must not be used here.
            using var call = invoker.AsyncUnaryCall(
                RawRaiseMethods.Raise,
                host: null,
                new CallOptions(deadline: TimeProvider.System.GetUtcNow().UtcDateTime + timeout, cancellationToken: cancellationToken),
                request);
            return Outcome.FromResult(await call.ResponseAsync);
        }
        catch (Exception e)
        {
            return Outcome.FromException<RaiseResponse>(e);
        }
    }

    private static RaiseResult ToResult(RaiseResponse response) => new(
        response.EventId,
        response.RoutedGroups,
        response.Duplicate,
        response.Outcomes.Count == 0 ? [] : [.. response.Outcomes.Select(o => new HookGroupOutcome(o.Group, (HookOutcome)(int)o.Outcome, o.Error, o.Attempt, o.WillRetry))]);

    private static ResiliencePipeline<RaiseResponse> BuildPipeline(HookBrokerClientOptions options, ILogger logger, TimeProvider time)
    {
        // Typed by the attempt's result, so no layer converts outcomes (each conversion would be one more async frame per raise).
        var builder = new ResiliencePipelineBuilder<RaiseResponse> { TimeProvider = time };
        var retry = options.Retry;
        if (retry.MaxRetryAttempts > 0)
        {
            builder.AddRetry(new RetryStrategyOptions<RaiseResponse>
            {
                ShouldHandle = static args => ValueTask.FromResult(RpcErrors.IsTransient(args.Outcome.Exception, args.Context.CancellationToken)),
                MaxRetryAttempts = retry.MaxRetryAttempts,
                Delay = retry.InitialDelay,
                MaxDelay = retry.MaxDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = retry.UseJitter,
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
            });
        }

        var breaker = options.CircuitBreaker;
        if (breaker.Enabled)
        {
            builder.AddCircuitBreaker(new CircuitBreakerStrategyOptions<RaiseResponse>
            {
                ShouldHandle = static args => ValueTask.FromResult(RpcErrors.IsTransient(args.Outcome.Exception, args.Context.CancellationToken)),
                FailureRatio = breaker.FailureRatio,
                MinimumThroughput = breaker.MinimumThroughput,
                SamplingDuration = breaker.SamplingDuration,
                BreakDuration = breaker.BreakDuration,
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
            });
        }

        return builder.Build();
    }

    private static void Validate(HookBrokerClientOptions options)
    {
        var failures = new List<string>();
        BrokerAddresses.Validate(nameof(HookBrokerClientOptions), options.Address, options.Addresses, failures);
        if (options.ConnectTimeout <= TimeSpan.Zero)
        {
            failures.Add($"HookBrokerClientOptions.ConnectTimeout must be positive (got {options.ConnectTimeout}).");
        }

        if (options.AttemptTimeout <= TimeSpan.Zero)
        {
            failures.Add("HookBrokerClientOptions.AttemptTimeout must be positive.");
        }

        if (failures.Count > 0)
        {
            throw new ArgumentException(string.Join(' ', failures), nameof(options));
        }

        // Polly validates the retry and breaker settings (ranges) when the pipeline is built, with messages naming them.
    }
}
