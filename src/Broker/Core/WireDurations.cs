using Google.Protobuf.WellKnownTypes;

namespace HookBroker.Broker.Core;

/// <summary>Durations a client sends (<c>wait_timeout</c>, <c>nack.delay</c>, <c>extend.lease</c>), checked against their limit.</summary>
internal static class WireDurations
{
    /// <summary>
    /// Null when <paramref name="value"/> (its sign checked by the caller) is at most <paramref name="max"/>, with it as
    /// <paramref name="duration"/>; otherwise what is wrong, naming <paramref name="field"/> and the limit.
    /// </summary>
    public static string? Within(Duration value, TimeSpan max, string field, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        // Seconds first: the wire lets a client send seconds past a Duration's valid range (±315,576,000,000), which
        // ToTimeSpan refuses by throwing; over the limit is over it, whatever the range.
        if (value.Seconds > (long)max.TotalSeconds)
        {
            return $"{field} {value.Seconds}s is longer than the limit of {max.TotalSeconds:0}s";
        }

        duration = value.ToTimeSpan();
        return duration <= max ? null : $"{field} {duration.TotalSeconds:0.###}s is longer than the limit of {max.TotalSeconds:0}s";
    }
}
