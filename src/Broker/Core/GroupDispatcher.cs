using System.Threading.Channels;
using HookBroker.Broker.Storage;
using Microsoft.Extensions.Logging;

namespace HookBroker.Broker.Core;

/// <summary>
/// Leases a group's events to the group's workers connected to this node. One loop per group serializes leasing, so
/// workers of a group compete without racing; it wakes on new events, freed capacity, a new worker, or the due time of
/// the earliest delayed retry.
/// </summary>
public sealed class GroupDispatcher : IAsyncDisposable
{
    /// <summary>How far the clock may move while the retry timer is armed before it is armed again (<see cref="ScheduleRetryWake"/>).</summary>
    private static readonly TimeSpan ArmingTolerance = TimeSpan.FromMilliseconds(1);

    private readonly IHookStore _store;
    private readonly BrokerMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly List<WorkerSession> _workers = [];
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private ITimer? _retryTimer;
    private DateTimeOffset _retryTimerDue = DateTimeOffset.MaxValue;
    private int _nextWorker;

    /// <summary>Starts the loop of <paramref name="group"/>.</summary>
    public GroupDispatcher(string group, GroupPolicy policy, IHookStore store, BrokerMetrics metrics, TimeProvider time, ILogger logger)
    {
        Group = group;
        Policy = policy;
        _store = store;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _loop = Task.Run(RunAsync);
    }

    /// <summary>The group.</summary>
    public string Group { get; }

    /// <summary>The group's policy.</summary>
    public GroupPolicy Policy { get; }

    /// <summary>The group's workers on this node.</summary>
    public IReadOnlyList<WorkerSession> Workers
    {
        get
        {
            lock (_gate)
            {
                return [.. _workers];
            }
        }
    }

    /// <summary>Adds a worker and looks for work for it.</summary>
    public void Add(WorkerSession worker)
    {
        lock (_gate)
        {
            _workers.Add(worker);
        }

        Wake();
    }

    /// <summary>Removes a worker; returns how many remain.</summary>
    public int Remove(WorkerSession worker)
    {
        lock (_gate)
        {
            _workers.Remove(worker);
            return _workers.Count;
        }
    }

    /// <summary>Asks the loop to look for deliverable events.</summary>
    public void Wake() => _wake.Writer.TryWrite(true);

    /// <summary>Frees the capacity of a lease that expired in storage; true when a worker here held it.</summary>
    public bool ForgetExpired(LeaseRef lease)
    {
        foreach (var worker in Workers)
        {
            if (worker.Forget(lease))
            {
                return true;
            }
        }

        return false;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _wake.Writer.TryComplete();
        try
        {
            await _loop;
        }
        catch (OperationCanceledException)
        {
            // The loop ends by cancellation.
        }

        lock (_gate)
        {
            _retryTimer?.Dispose();
        }

        _stop.Dispose();
    }

    private async Task RunAsync()
    {
        var stopping = _stop.Token;
        while (await _wake.Reader.WaitToReadAsync(stopping))
        {
            _wake.Reader.TryRead(out _);
            try
            {
                while (await LeaseRoundAsync(stopping))
                {
                    // A worker got all it asked for: there may be more.
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                BrokerLog.LeaseFailed(_logger, ex, Group);
                // Retry after a pause instead of spinning on a failing store.
                await Task.Delay(TimeSpan.FromSeconds(1), _time, stopping);
                Wake();
            }
        }
    }

    /// <summary>Leases once for every worker with capacity; true when some worker's batch was full.</summary>
    private async Task<bool> LeaseRoundAsync(CancellationToken cancellationToken)
    {
        WorkerSession[] workers;
        lock (_gate)
        {
            if (_workers.Count == 0)
            {
                return false;
            }

            // Rotate the starting worker so competing workers share the backlog.
            var start = _nextWorker++ % _workers.Count;
            workers = [.. _workers.Skip(start), .. _workers.Take(start)];
        }

        var more = false;
        foreach (var worker in workers)
        {
            var capacity = worker.Capacity;
            if (capacity <= 0)
            {
                continue;
            }

            var now = _time.GetUtcNow();
            var batch = await _store.LeaseAsync(
                new LeaseRequest(Group, worker.Id, worker.Filter, capacity, now, now + Policy.AckDeadline, Policy.MaxAttempts), cancellationToken);
            ScheduleRetryWake(batch.NextDueAt);
            if (batch.Deliveries.Count == 0)
            {
                continue;
            }

            var deliveries = batch.Deliveries.Select(DeliveryEncoder.Encode).ToList();
            if (!worker.TryAccept(batch.Deliveries, deliveries))
            {
                // The stream closed between the capacity check and now: hand the leases back at once, even when this
                // loop is stopping (its group's last worker left): not with the loop's token, or they would wait out
                // their ack deadline leased to nobody.
                await _store.ReleaseAsync(
                    Group,
                    [.. batch.Deliveries.Select(d => new ReleaseItem(new LeaseRef(d.EventId, d.LeaseNo), Policy.MaxAttempts))],
                    "worker disconnected before delivery",
                    _time.GetUtcNow(),
                    CancellationToken.None);
                continue;
            }

            _metrics.OnDelivered(deliveries.Count);
            more |= batch.Deliveries.Count == capacity;
        }

        return more;
    }

    private void ScheduleRetryWake(DateTimeOffset? due)
    {
        if (due is not { } at)
        {
            return;
        }

        lock (_gate)
        {
            // Read the clock here, not before the lease call: time may have moved while storage worked.
            var now = _time.GetUtcNow();
            if (at >= _retryTimerDue && _retryTimerDue > now)
            {
                return;
            }

            _retryTimer ??= _time.CreateTimer(
                static state => ((GroupDispatcher)state!).OnRetryDue(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);

            // A timer counts from when it is armed, and the clock may move between reading it and arming (another
            // thread advancing a fake clock by seconds; this thread paused): armed with the earlier reading, the timer
            // would fire that much late. So arm it again from the moved clock until the clock stood (within a
            // millisecond) while it was armed. It never fires early: each arming counts from a later time than it read.
            while (at > now)
            {
                _retryTimer.Change(at - now, Timeout.InfiniteTimeSpan);
                var armedAt = _time.GetUtcNow();
                if (armedAt - now <= ArmingTolerance)
                {
                    _retryTimerDue = at;
                    return;
                }

                now = armedAt;
            }

            // Due already: no timer to wait for.
            _retryTimer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            _retryTimerDue = DateTimeOffset.MaxValue;
        }

        Wake();
    }

    private void OnRetryDue()
    {
        lock (_gate)
        {
            _retryTimerDue = DateTimeOffset.MaxValue;
        }

        Wake();
    }
}
