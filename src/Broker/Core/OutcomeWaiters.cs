using HookBroker.Broker.Storage;

namespace HookBroker.Broker.Core;

/// <summary>
/// Raises in wait mode, waiting for each routed group's first outcome. Outcomes come from the store's listener (so an
/// ack on another broker node completes a wait here, on engines shared by nodes).
/// </summary>
public sealed class OutcomeWaiters
{
    /// <summary>Outcomes kept per generation for waiters still registering; two generations are kept.</summary>
    public const int GenerationSize = 50_000;

    private readonly Lock _gate = new();
    private readonly Dictionary<long, List<OutcomeWaiter>> _byEvent = [];
    // Two generations, so memory stays bounded under sustained wait-mode load (windows overlapping without end) while
    // an outcome stays visible for at least a generation's worth of outcomes after it was published.
    private Dictionary<long, List<OutcomeNotice>> _recent = [];
    private Dictionary<long, List<OutcomeNotice>> _previous = [];
    private int _recentCount;
    private int _openWindows;

    /// <summary>
    /// Keeps every outcome published until the returned window is disposed. A raise in wait mode opens one before it
    /// stores its event and registers its waiter inside it: an outcome reported between the store's commit and the
    /// registration (a fast worker, an expiring lease) is then still seen, with its own attempt number.
    /// </summary>
    public IDisposable OpenWindow()
    {
        lock (_gate)
        {
            _openWindows++;
        }

        return new Window(this);
    }

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
            foreach (var generation in (ReadOnlySpan<Dictionary<long, List<OutcomeNotice>>>)[_previous, _recent])
            {
                if (generation.TryGetValue(eventId, out var seen))
                {
                    foreach (var outcome in seen)
                    {
                        waiter.Offer(outcome);
                    }
                }
            }
        }

        return waiter;
    }

    /// <summary>Offers outcomes to the waiters of their events.</summary>
    public void Publish(IReadOnlyList<OutcomeNotice> outcomes)
    {
        lock (_gate)
        {
            if (_openWindows > 0)
            {
                Remember(outcomes);
            }

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

    private void Remember(IReadOnlyList<OutcomeNotice> outcomes)
    {
        foreach (var outcome in outcomes)
        {
            if (_recentCount >= GenerationSize)
            {
                _previous = _recent;
                _recent = [];
                _recentCount = 0;
            }

            if (!_recent.TryGetValue(outcome.EventId, out var list))
            {
                _recent[outcome.EventId] = list = [];
            }

            list.Add(outcome);
            _recentCount++;
        }
    }

    private void CloseWindow()
    {
        lock (_gate)
        {
            if (--_openWindows == 0)
            {
                _recent.Clear();
                _previous.Clear();
                _recentCount = 0;
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

    private sealed class Window(OutcomeWaiters owner) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.CloseWindow();
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
