using HookBroker.Broker.Core;
using HookBroker.Protocol.V1;

namespace HookBroker.Broker.Tests.InProcess;

/// <summary>Heartbeats on silent subscriber streams, sent by one broker-wide timer.</summary>
public sealed class HeartbeatTests : IAsyncLifetime
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(15);
    private readonly CountingTimeProvider _timers = new();
    private BrokerTestHost _broker = null!;

    // The host's fake clock, viewed through a counter of the timers the broker creates.
    public async ValueTask InitializeAsync() => _broker = await BrokerTestHost.StartAsync(configureServices: _timers.ReplaceHostClock);

    public async ValueTask DisposeAsync()
    {
        Assert.Empty(_broker.Logs.Errors);
        await _broker.DisposeAsync();
    }

    [Fact(Timeout = 30_000)]
    public async Task Idle_streams_get_heartbeats_without_a_timer_each()
    {
        var workers = new List<TestWorker>();
        var before = _timers.Created;
        for (var i = 0; i < 20; i++)
        {
            workers.Add(await _broker.SubscribeAsync($"group-{i}", [$"label.{i}"]));
        }

        for (var round = 1; round <= 2; round++)
        {
            // One check period at a time, as a real clock passes. Advanced by the whole interval at once, the fake clock
            // fires the broker's check several times back to back, and a stream whose writer had not yet recorded the
            // heartbeat it was sending could look silent to the next firing and get a second one (seen once in CI).
            var check = SubscriptionManager.HeartbeatCheckPeriod(Interval);
            for (var passed = TimeSpan.Zero; passed < Interval; passed += check)
            {
                _broker.Time.Advance(check);
            }

            foreach (var worker in workers)
            {
                var heartbeat = await worker.NextHeartbeatAsync();
                Assert.Equal(_broker.Time.GetUtcNow(), heartbeat.ServerTime.ToDateTimeOffset());
            }
        }

        // A timer per waiting stream (renewed after each message) would have made dozens here.
        Assert.True(_timers.Created - before <= 2, $"{_timers.Created - before} timers created for 20 idle streams");
        foreach (var worker in workers)
        {
            await worker.DisposeAsync();
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task A_message_restarts_the_silence_before_the_next_heartbeat()
    {
        var opened = _broker.Time.GetUtcNow();
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        _broker.Time.Advance(TimeSpan.FromSeconds(10));
        await _broker.RaiseAsync("user_created", new { username = "ali" });
        await worker.NextAsync();

        // 15 s after the subscribe, but only 5 s after the delivery: no heartbeat yet.
        _broker.Time.Advance(TimeSpan.FromSeconds(5));
        _broker.Time.Advance(TimeSpan.FromSeconds(15));

        var heartbeat = await worker.NextHeartbeatAsync();
        Assert.True(heartbeat.ServerTime.ToDateTimeOffset() >= opened + TimeSpan.FromSeconds(25), $"heartbeat at {heartbeat.ServerTime}");
    }

    private sealed class CountingTimeProvider : FakeClockView
    {
        private int _created;

        public int Created => Volatile.Read(ref _created);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            Interlocked.Increment(ref _created);
            return base.CreateTimer(callback, state, dueTime, period);
        }
    }
}
