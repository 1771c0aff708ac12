using System.Globalization;
using System.Text;

namespace HookBroker.Benchmarks;

/// <summary>One result line of key=value pairs, always starting with the keys every scenario reports.</summary>
internal sealed class ResultLine
{
    private readonly StringBuilder _text = new();

    public ResultLine(string scenario, string engine, string mode, double eventsPerSecond, (double P50, double P99, double P999) latency,
        double? brokerRssMb, double? brokerCpuMicrosPerEvent, long n, long lost)
    {
        Add("scenario", scenario).Add("engine", engine).Add("mode", mode)
            .Add("events_per_s", eventsPerSecond.ToString("0", CultureInfo.InvariantCulture))
            .Add("p50_ms", Ms(latency.P50)).Add("p99_ms", Ms(latency.P99)).Add("p999_ms", Ms(latency.P999))
            .Add("broker_rss_mb", brokerRssMb is { } rss ? rss.ToString("0", CultureInfo.InvariantCulture) : "na")
            .Add("broker_cpu_us_per_event", brokerCpuMicrosPerEvent is { } cpu ? cpu.ToString("0.0", CultureInfo.InvariantCulture) : "na")
            .Add("n", n.ToString(CultureInfo.InvariantCulture))
            .Add("lost", lost.ToString(CultureInfo.InvariantCulture));
        EventsPerSecond = eventsPerSecond;
        Lost = lost;
    }

    public double EventsPerSecond { get; }

    public long Lost { get; }

    public ResultLine Add(string key, string value)
    {
        if (_text.Length > 0)
        {
            _text.Append(' ');
        }

        _text.Append(key).Append('=').Append(value);
        return this;
    }

    public override string ToString() => _text.ToString();

    private static string Ms(double value) => value.ToString("0.000", CultureInfo.InvariantCulture);
}
