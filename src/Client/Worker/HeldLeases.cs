namespace HookBroker.Client.Internal;

/// <summary>
/// The leases a subscription holds and has not settled: a doubly linked list of <see cref="HeldLease"/> under one lock.
/// Adding and removing cost a few pointer writes (no hashing of delivery ids, no per-entry node); only the extender and
/// the drain walk it.
/// </summary>
internal sealed class HeldLeases
{
    private readonly Lock gate = new();
    private HeldLease? first;

    public void Add(HeldLease lease)
    {
        lock (gate)
        {
            lease.Next = first;
            lease.Previous = null;
            if (first is not null)
            {
                first.Previous = lease;
            }

            first = lease;
            lease.IsHeld = true;
        }
    }

    /// <summary>Removes <paramref name="lease"/>; false when it was removed already. Whoever removes a lease settles it.</summary>
    public bool TryRemove(HeldLease lease)
    {
        lock (gate)
        {
            if (!lease.IsHeld)
            {
                return false;
            }

            if (lease.Previous is { } previous)
            {
                previous.Next = lease.Next;
            }
            else
            {
                first = lease.Next;
            }

            if (lease.Next is { } next)
            {
                next.Previous = lease.Previous;
            }

            lease.Previous = null;
            lease.Next = null;
            lease.IsHeld = false;
            return true;
        }
    }

    /// <summary>The leases held now, those a handler took or all of them.</summary>
    public List<HeldLease> Snapshot(bool startedOnly)
    {
        var leases = new List<HeldLease>();
        lock (gate)
        {
            for (var lease = first; lease is not null; lease = lease.Next)
            {
                if (!startedOnly || lease.Started)
                {
                    leases.Add(lease);
                }
            }
        }

        return leases;
    }
}
