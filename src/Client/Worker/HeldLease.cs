using HookBroker.Wire;

namespace HookBroker.Client.Internal;

/// <summary>
/// A delivery a <see cref="SubscriptionSession"/> holds, from receipt until it is settled: its lease end as the worker
/// keeps it, and whether a handler took it. Also its own node in <see cref="HeldLeases"/>, so holding one costs no
/// other allocation and releasing it no lookup.
/// </summary>
internal sealed class HeldLease(RawDelivery delivery, DateTimeOffset endsAt)
{
    private bool started;

    public RawDelivery Delivery { get; } = delivery;

    /// <summary>When the lease ends unless extended; read and moved by the extender only.</summary>
    public DateTimeOffset EndsAt { get; set; } = endsAt;

    /// <summary>Whether a handler has taken it (set once, by that handler).</summary>
    public bool Started
    {
        get => Volatile.Read(ref started);
        set => Volatile.Write(ref started, value);
    }

    /// <summary>The neighbours in <see cref="HeldLeases"/>, guarded by its lock.</summary>
    internal HeldLease? Previous { get; set; }

    /// <inheritdoc cref="Previous"/>
    internal HeldLease? Next { get; set; }

    /// <summary>Whether it is in <see cref="HeldLeases"/>, guarded by its lock.</summary>
    internal bool IsHeld { get; set; }
}
