using System.Diagnostics;
using Grpc.Core;
using HookBroker.Client.Tests.Infrastructure;
using HookBroker.Protocol.V1;
using Microsoft.Extensions.Logging;
using Polly.CircuitBreaker;

namespace HookBroker.Client.Tests;

/// <summary>
/// The client's retries and circuit breaker, batched and unary: a <see cref="CountingProxy"/> between the client and a real
/// broker process answers chosen raises with a failure, as a broker would, and records every attempt that reached it.
/// </summary>
public sealed class ResilienceTests
{
    private const string Label = "order_placed";

    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Theory(Timeout = 120_000)]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_transient_failure_of_the_first_attempt_is_retried_after_its_backoff_with_the_same_key_and_logged(bool batching)
    {
        await using var broker = await StartBrokerAsync();
        await using var proxy = await CountingProxy.StartAsync(broker, Token);
        var options = new HookBrokerClientOptions { Address = proxy.Address, Batching = batching };
        options.Retry.MaxRetryAttempts = 4;
        options.Retry.InitialDelay = TimeSpan.FromMilliseconds(300);
        options.Retry.UseJitter = false;
        var log = new ClientLogRecorder();
        using var loggerFactory = LoggerFactory.Create(l => l.AddProvider(log));
        await using var client = new HookBrokerClient(options, loggerFactory);
        await client.ExecuteEventAsync(Label, new { n = 0 }, cancellationToken: Token); // opens the stream

        proxy.FailNextRaises(2);
        var clock = Stopwatch.StartNew();
        var result = await client.ExecuteEventAsync(Label, new { n = 1 }, cancellationToken: Token).AsTask().WaitAsync(Wait, Token);
        var elapsed = clock.Elapsed;

        Assert.Equal(1, result.RoutedGroups);
        Assert.Equal(2, proxy.FailedRaises);

        // Three attempts of one raise, each with the raise's idempotency key: stored once.
        var attempts = proxy.Raised.Skip(1).ToList();
        Assert.Equal(3, attempts.Count);
        Assert.Single(attempts.Select(a => a.IdempotencyKey).Distinct());
        Assert.False(string.IsNullOrEmpty(attempts[0].IdempotencyKey));
        Assert.Equal(2UL, (await StatsAsync(broker)).RaisedEvents);

        // Exponential backoff (jitter off here): 300 ms before the first retry, 600 ms before the second; both logged.
        var retries = log.Named("RetryingRaise");
        Assert.Equal([1, 2], retries.Select(r => (int)r.Values["Attempt"]!));
        Assert.Equal([TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(600)], retries.Select(r => (TimeSpan)r.Values["Delay"]!));
        Assert.All(retries, r => Assert.Equal(Label, r.Values["Label"]));
        Assert.All(retries, r => Assert.Equal(nameof(StatusCode.Unavailable), r.Values["StatusCode"]));
        Assert.True(elapsed >= TimeSpan.FromMilliseconds(850), $"retried after {elapsed}, sooner than its backoff");
        Assert.Empty(log.Named("CircuitOpened"));
    }

    [Theory(Timeout = 120_000)]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_raise_failing_every_attempt_makes_all_its_attempts_and_a_definite_failure_makes_one(bool batching)
    {
        await using var broker = await StartBrokerAsync();
        await using var proxy = await CountingProxy.StartAsync(broker, Token);
        var options = new HookBrokerClientOptions { Address = proxy.Address, Batching = batching };
        options.Retry.MaxRetryAttempts = 2;
        options.Retry.InitialDelay = TimeSpan.FromMilliseconds(20);
        var log = new ClientLogRecorder();
        using var loggerFactory = LoggerFactory.Create(l => l.AddProvider(log));
        await using var client = new HookBrokerClient(options, loggerFactory);

        proxy.FailNextRaises(long.MaxValue);
        var down = await Assert.ThrowsAsync<BrokerUnavailableException>(
            () => client.ExecuteEventAsync(Label, new { n = 1 }, cancellationToken: Token).AsTask().WaitAsync(Wait, Token));
        Assert.Equal(StatusCode.Unavailable, down.StatusCode);
        Assert.IsType<RpcException>(down.InnerException);
        Assert.Equal(3, proxy.Raised.Count);
        Assert.Single(proxy.Raised.Select(r => r.IdempotencyKey).Distinct());
        Assert.Equal(2, log.Named("RetryingRaise").Count);

        // A definite refusal is not retried: one attempt, its own exception.
        proxy.FailNextRaises(1, StatusCode.InvalidArgument);
        await Assert.ThrowsAsync<InvalidEventException>(
            () => client.ExecuteEventAsync(Label, new { n = 2 }, cancellationToken: Token).AsTask().WaitAsync(Wait, Token));
        Assert.Equal(4, proxy.Raised.Count);
        Assert.Equal(2, log.Named("RetryingRaise").Count);
        Assert.Equal(0UL, (await StatsAsync(broker)).RaisedEvents);
    }

    [Theory(Timeout = 120_000)]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Successes_keep_the_circuit_closed_failures_open_it_at_the_ratio_and_a_trial_closes_it(bool batching)
    {
        await using var broker = await StartBrokerAsync();
        await using var proxy = await CountingProxy.StartAsync(broker, Token);
        var options = new HookBrokerClientOptions { Address = proxy.Address, Batching = batching };
        options.Retry.MaxRetryAttempts = 0; // one attempt per raise: each raise is one outcome for the breaker
        options.CircuitBreaker.FailureRatio = 0.5;
        options.CircuitBreaker.MinimumThroughput = 10;
        options.CircuitBreaker.SamplingDuration = TimeSpan.FromMinutes(2);
        options.CircuitBreaker.BreakDuration = TimeSpan.FromSeconds(1);
        var log = new ClientLogRecorder();
        using var loggerFactory = LoggerFactory.Create(l => l.AddProvider(log));
        await using var client = new HookBrokerClient(options, loggerFactory);

        for (var n = 0; n < 20; n++)
        {
            await client.ExecuteEventAsync(Label, new { n }, cancellationToken: Token);
        }

        // 12 failures after 20 successes: a ratio of 0.375, so the circuit stays closed (failures alone would have opened it).
        proxy.FailNextRaises(12);
        for (var n = 0; n < 12; n++)
        {
            var failed = await Assert.ThrowsAsync<BrokerUnavailableException>(
                () => client.ExecuteEventAsync(Label, new { n }, cancellationToken: Token).AsTask().WaitAsync(Wait, Token));
            Assert.IsType<RpcException>(failed.InnerException);
        }

        Assert.Equal(1, (await client.ExecuteEventAsync(Label, new { n = 20 }, cancellationToken: Token)).RoutedGroups);
        Assert.Empty(log.Named("CircuitOpened"));

        // 21 successes: the 21st failure in a row brings the ratio to 0.5 and opens the circuit; the next raise fails fast.
        proxy.FailNextRaises(long.MaxValue);
        var failures = 0;
        BrokerUnavailableException? shortCircuited = null;
        while (shortCircuited is null && failures < 40)
        {
            var reached = proxy.Raised.Count;
            var failed = await Assert.ThrowsAsync<BrokerUnavailableException>(
                () => client.ExecuteEventAsync(Label, new { n = failures }, cancellationToken: Token).AsTask().WaitAsync(Wait, Token));
            if (failed.InnerException is BrokenCircuitException)
            {
                shortCircuited = failed;
                Assert.Equal(reached, proxy.Raised.Count); // not sent
            }
            else
            {
                failures++;
            }
        }

        Assert.Equal(9, failures); // 12 + 9 failures against 21 successes
        Assert.NotNull(shortCircuited);
        Assert.Equal(StatusCode.Unavailable, shortCircuited.StatusCode);
        Assert.Single(log.Named("CircuitOpened"));

        // After the break, one trial raise goes through; its success closes the circuit.
        proxy.FailNextRaises(0);
        RaiseResult? trial = null;
        await Poll.UntilAsync(
            async () =>
            {
                try
                {
                    trial = await client.ExecuteEventAsync(Label, new { n = 100 }, cancellationToken: Token);
                    return true;
                }
                catch (BrokerUnavailableException e) when (e.InnerException is BrokenCircuitException)
                {
                    return false;
                }
            },
            Wait,
            "the circuit to let a trial raise through",
            Token);
        Assert.Equal(1, trial!.RoutedGroups);
        Assert.Single(log.Named("CircuitClosed"));
        Assert.Equal(1, (await client.ExecuteEventAsync(Label, new { n = 101 }, cancellationToken: Token)).RoutedGroups);
    }

    private static async Task<BrokerProcess> StartBrokerAsync()
    {
        var broker = new BrokerProcess();
        try
        {
            await broker.StartAsync(Token);
            await DurableGroups.CreateAsync(broker, "orders", Label, Token);
            return broker;
        }
        catch
        {
            await broker.DisposeAsync();
            throw;
        }
    }

    private static async Task<GetStatsResponse> StatsAsync(BrokerProcess broker)
    {
        using var channel = broker.CreateChannel();
        return await new HookBrokerAdmin.HookBrokerAdminClient(channel).GetStatsAsync(new GetStatsRequest(), cancellationToken: Token);
    }
}
