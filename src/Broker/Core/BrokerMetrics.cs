using System.Diagnostics.Metrics;

namespace HookBroker.Broker.Core;

/// <summary>
/// The broker's counters: one <see cref="Meter"/> ("HookBroker.Broker", OpenTelemetry-style names) and the same
/// totals for the admin service's GetStats.
/// </summary>
public sealed class BrokerMetrics : IDisposable
{
    /// <summary>The meter name to subscribe to.</summary>
    public const string MeterName = "HookBroker.Broker";

    private readonly Meter _meter;
    private readonly Counter<long> _raised;
    private readonly Counter<long> _unrouted;
    private readonly Counter<long> _duplicates;
    private readonly Counter<long> _delivered;
    private readonly Counter<long> _acked;
    private readonly Counter<long> _deadLettered;
    private long _raisedTotal;
    private long _unroutedTotal;
    private long _duplicatesTotal;
    private long _deliveredTotal;
    private long _ackedTotal;
    private long _deadLetteredTotal;

    /// <summary>Creates the meter through the host's factory.</summary>
    public BrokerMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(MeterName);
        _raised = _meter.CreateCounter<long>("hookbroker.events.raised", "{event}", "Events stored");
        _unrouted = _meter.CreateCounter<long>("hookbroker.events.unrouted", "{event}", "Events that matched no group (not stored)");
        _duplicates = _meter.CreateCounter<long>("hookbroker.events.duplicates", "{event}", "Raises answered as duplicates of an idempotency key");
        _delivered = _meter.CreateCounter<long>("hookbroker.deliveries.sent", "{delivery}", "Deliveries leased to workers");
        _acked = _meter.CreateCounter<long>("hookbroker.deliveries.acked", "{delivery}", "Deliveries acked");
        _deadLettered = _meter.CreateCounter<long>("hookbroker.deliveries.dead_lettered", "{delivery}", "Deliveries dead-lettered");
    }

    /// <summary>Events stored since start.</summary>
    public long Raised => Interlocked.Read(ref _raisedTotal);

    /// <summary>Unrouted events since start.</summary>
    public long Unrouted => Interlocked.Read(ref _unroutedTotal);

    /// <summary>Duplicate raises since start.</summary>
    public long Duplicates => Interlocked.Read(ref _duplicatesTotal);

    /// <summary>Deliveries since start.</summary>
    public long Delivered => Interlocked.Read(ref _deliveredTotal);

    /// <summary>Acks since start.</summary>
    public long Acked => Interlocked.Read(ref _ackedTotal);

    /// <summary>Dead letters since start.</summary>
    public long DeadLettered => Interlocked.Read(ref _deadLetteredTotal);

    internal void OnRaised(int count) => Add(_raised, ref _raisedTotal, count);

    internal void OnUnrouted(int count) => Add(_unrouted, ref _unroutedTotal, count);

    internal void OnDuplicates(int count) => Add(_duplicates, ref _duplicatesTotal, count);

    internal void OnDelivered(int count) => Add(_delivered, ref _deliveredTotal, count);

    internal void OnAcked(int count) => Add(_acked, ref _ackedTotal, count);

    internal void OnDeadLettered(int count) => Add(_deadLettered, ref _deadLetteredTotal, count);

    /// <inheritdoc />
    public void Dispose() => _meter.Dispose();

    private static void Add(Counter<long> counter, ref long total, int count)
    {
        if (count > 0)
        {
            counter.Add(count);
            Interlocked.Add(ref total, count);
        }
    }
}
