using System.Diagnostics.Metrics;

namespace HookBroker.Client.Internal;

/// <summary>
/// Counters of the default events' remote path, on the <c>HookBroker.Client</c> meter. Tags are low-cardinality:
/// <c>hookbroker.event</c> is one of the four default labels, <c>hookbroker.reason</c> one of a few fixed words.
/// </summary>
internal sealed class DefaultEventMetrics
{
    public const string MeterName = "HookBroker.Client";

    private readonly Counter<long> sent;
    private readonly Counter<long> skipped;
    private readonly Counter<long> dropped;

    public DefaultEventMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        sent = meter.CreateCounter<long>("hookbroker.client.default_events.sent", "{event}", "Default events stored by the broker.");
        skipped = meter.CreateCounter<long>("hookbroker.client.default_events.skipped", "{event}", "Default events not raised remotely because no group listens.");
        dropped = meter.CreateCounter<long>("hookbroker.client.default_events.dropped", "{event}", "Default events lost on the way to the broker (buffer full, send failed, refused, stopped).");
    }

    public void Sent(string label) => sent.Add(1, new KeyValuePair<string, object?>("hookbroker.event", label));

    public void Skipped(string label) => skipped.Add(1, new KeyValuePair<string, object?>("hookbroker.event", label));

    public void Dropped(string label, string reason, long count = 1) => dropped.Add(
        count, new KeyValuePair<string, object?>("hookbroker.event", label), new KeyValuePair<string, object?>("hookbroker.reason", reason));
}
