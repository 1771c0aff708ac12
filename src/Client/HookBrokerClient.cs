using System.Text.Json;
using Grpc.Core;
using HookBroker.Client.Internal;
using HookBroker.Protocol.V1;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polly;
using Polly.CircuitBreaker;
using Outcome = Polly.Outcome;
using BrokerApi = HookBroker.Protocol.V1.HookBroker;

namespace HookBroker.Client;

/// <summary>
/// The HookBroker client: one gRPC channel per instance, reused by every call (create one per broker, or per set of
/// broker nodes, and keep it, as with <c>HttpClient</c>), and Polly retries (exponential backoff with jitter) and a
/// circuit breaker around each raise: a raise's first attempt runs outside the retry pipeline, which only a transient
/// failure enters, and the breaker is handed its outcome (<see cref="RaiseResilience"/>). With several
/// <see cref="HookBrokerClientOptions.Addresses"/>, calls are spread round-robin over the ready nodes and a retry goes to
/// the next one. Thread-safe.
/// </summary>
public sealed class HookBrokerClient : IHookBrokerClient
{
    private readonly BrokerChannel channel;
    private readonly BrokerApi.HookBrokerClient broker;
    private readonly CallInvoker invoker;
    private readonly RaiseResilience resilience;
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
        resilience = new RaiseResilience(this.options, logger, time);
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
    public ValueTask<RaiseResult> ExecuteEventAsync(
        string label, object? args = null, RaiseOptions? options = null, CancellationToken cancellationToken = default)
    {
        // Not an async method itself, so the args object and the options are not held while the raise is in flight
        // (only its encoded request is); a bad argument still fails the returned task, as from an async method.
        EncodedRaise raise;
        try
        {
            ArgumentException.ThrowIfNullOrEmpty(label);
            raise = EncodedRaise.Encode(
                label,
                ArgsConverter.ToStructBytes(args, jsonOptions),
                // Every raise carries a key (generated when not given), so a retry after a lost answer is never stored twice.
                options?.IdempotencyKey,
                options?.OrderingKey,
                this.options.Source,
                options?.WaitTimeout,
                options?.Headers);
        }
        catch (Exception e)
        {
            return ValueTask.FromException<RaiseResult>(e);
        }

        return cancellationToken.IsCancellationRequested
            ? ValueTask.FromCanceled<RaiseResult>(cancellationToken)
            : RaiseAsync(label, raise, this.options.AttemptTimeout + (options?.WaitTimeout ?? TimeSpan.Zero), cancellationToken);
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

    /// <summary>
    /// Sends <paramref name="raise"/> (retried, through the circuit breaker), each attempt within
    /// <paramref name="attemptTimeout"/> (in wait mode, the attempt timeout plus the wait), and turns the answer into the result.
    /// </summary>
    private async ValueTask<RaiseResult> RaiseAsync(string label, EncodedRaise raise, TimeSpan attemptTimeout, CancellationToken cancellationToken)
    {
        // The first attempt runs on its own while the circuit is closed (the common case: no Polly machinery per raise);
        // only a transient failure enters the retry pipeline, for the remaining attempts (RaiseResilience).
        Outcome<RaiseResponse> outcome;
        if (resilience.AdmitsDirectly)
        {
            outcome = await RaiseOnceAsync(raise, attemptTimeout, cancellationToken);
            await resilience.RecordAsync(outcome, cancellationToken);
        }
        else
        {
            outcome = await resilience.ThroughBreakerAsync(AttemptOf, (Self: this, Raise: raise, Timeout: attemptTimeout), cancellationToken);
        }

        if (resilience.ShouldRetry(outcome, cancellationToken))
        {
            outcome = await resilience.RetryAsync(label, outcome, AttemptOf, (Self: this, Raise: raise, Timeout: attemptTimeout), cancellationToken);
        }

        if (outcome.Exception is { } failure)
        {
            if (failure is RpcException or BrokenCircuitException)
            {
                throw RpcErrors.Map(failure, label, cancellationToken);
            }

            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }

        var response = outcome.Result ?? throw new InvalidOperationException("A raise attempt ended with neither an answer nor an error.");
        var result = ToResult(response);
        if (result.Outcomes.Count > 0 && result.Outcomes.Any(o => o.Outcome is HookOutcome.Failed or HookOutcome.DeadLettered))
        {
            throw new HookFailedException(label, result);
        }

        return result;
    }

    /// <summary>One attempt of a raise, for the retry and breaker pipelines (the state carries the client and the raise).</summary>
    private static readonly Func<(HookBrokerClient Self, EncodedRaise Raise, TimeSpan Timeout), CancellationToken, ValueTask<Outcome<RaiseResponse>>> AttemptOf =
        static (state, cancellationToken) => state.Self.RaiseOnceAsync(state.Raise, state.Timeout, cancellationToken);

    /// <summary>One attempt; its failure is returned, not thrown (the pipeline is outcome-based).</summary>
    private ValueTask<Outcome<RaiseResponse>> RaiseOnceAsync(EncodedRaise raise, TimeSpan timeout, CancellationToken cancellationToken)
    {
        // Batching: the attempt rides the shared RaiseStream with the raises of other callers. A raise too large for a
        // batch travels unary, where a size error is its own; so does every raise once a broker lacks RaiseStream.
        if (multiplexer is { IsSupported: true } && RaiseStreamMultiplexer.Accepts(raise.Size))
        {
            return multiplexer.RaiseAsync(raise, timeout, cancellationToken);
        }

        return new ValueTask<Outcome<RaiseResponse>>(RaiseUnaryAsync(raise.Bytes, timeout, cancellationToken));
    }

    private async Task<Outcome<RaiseResponse>> RaiseUnaryAsync(byte[] raise, TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            // gRPC deadlines are absolute times on the system clock (the transport compares them with it), so the
            // injected TimeProvider, which may be fake in tests, must not be used here.
            using var call = invoker.AsyncUnaryCall(
                RawRaiseMethods.Raise,
                host: null,
                new CallOptions(deadline: TimeProvider.System.GetUtcNow().UtcDateTime + timeout, cancellationToken: cancellationToken),
                raise);
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
