using HookBroker.Broker.Storage;

namespace HookBroker.Broker.Core;

/// <summary>
/// Raises in wait mode, waiting for each routed group's first outcome. Outcomes come from the store's listener (so an
/// ack on another broker node completes a wait here, on engines shared by nodes).
/// </summary>
public sealed class OutcomeWaiters
{
    private readonly Lock _gate = new();
    private readonly Dictionary<long, List<OutcomeWaiter>> _byEvent = [];

    /// <summary>Starts waiting for <paramref name="eventId"/> in <paramref name="groups"/>. Dispose the waiter when done.</summary>
    public OutcomeWaiter Register(long eventId, IReadOnlyList<string> groups)
    {
        var waiter = new OutcomeWaiter(this, eventId, groups);
        lock (_gate)
        {
            if (!_byEvent.TryGetValue(eventId, out var list))
            {
                _byEvent[eventId] = list = [];
            }

            list.Add(waiter);
        }

        return waiter;
    }

    /// <summary>Offers outcomes to the waiters of their events.</summary>
    public void Publish(IReadOnlyList<OutcomeNotice> outcomes)
    {
        lock (_gate)
        {
            if (_byEvent.Count == 0)
            {
                return;
            }

            foreach (var outcome in outcomes)
            {
                if (_byEvent.TryGetValue(outcome.EventId, out var list))
                {
                    foreach (var waiter in list)
                    {
                        waiter.Offer(outcome);
                    }
                }
            }
        }
    }

    internal void Unregister(OutcomeWaiter waiter)
    {
        lock (_gate)
        {
            if (_byEvent.TryGetValue(waiter.EventId, out var list) && list.Remove(waiter) && list.Count == 0)
            {
                _byEvent.Remove(waiter.EventId);
            }
        }
    }
}

/// <summary>One raise waiting for its groups' outcomes; keeps the first outcome per group.</summary>
public sealed class OutcomeWaiter : IDisposable
{
    private readonly OutcomeWaiters _owner;
    private readonly Lock _gate = new();
    private readonly OutcomeNotice?[] _outcomes;
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _missing;

    internal OutcomeWaiter(OutcomeWaiters owner, long eventId, IReadOnlyList<string> groups)
    {
        _owner = owner;
        EventId = eventId;
        Groups = groups;
        _outcomes = new OutcomeNotice?[groups.Count];
        _missing = groups.Count;
        if (_missing == 0)
        {
            _done.TrySetResult();
        }
    }

    /// <summary>The event waited on.</summary>
    public long EventId { get; }

    /// <summary>The groups waited on.</summary>
    public IReadOnlyList<string> Groups { get; }

    /// <summary>Completes when every group has an outcome.</summary>
    public Task Completed => _done.Task;

    /// <summary>Each group's first outcome so far (null: none yet).</summary>
    public IReadOnlyList<OutcomeNotice?> Snapshot()
    {
        lock (_gate)
        {
            return [.. _outcomes];
        }
    }

    /// <summary>Records <paramref name="outcome"/> if it is the first for its group.</summary>
    public void Offer(OutcomeNotice? outcome)
    {
        if (outcome is null || outcome.EventId != EventId)
        {
            return;
        }

        lock (_gate)
        {
            for (var i = 0; i < Groups.Count; i++)
            {
                if (_outcomes[i] is null && string.Equals(Groups[i], outcome.Group, StringComparison.Ordinal))
                {
                    _outcomes[i] = outcome;
                    if (--_missing == 0)
                    {
                        _done.TrySetResult();
                    }
                }
            }
        }
    }

    /// <inheritdoc />
    public void Dispose() => _owner.Unregister(this);
}
