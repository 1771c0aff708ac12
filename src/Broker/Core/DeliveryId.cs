using System.Globalization;
using HookBroker.Broker.Storage;

namespace HookBroker.Broker.Core;

/// <summary>The wire form of ids: an event id is its number; a delivery id is "eventId.leaseNo", opaque to clients.</summary>
public static class DeliveryId
{
    /// <summary>Formats a lease as a delivery id.</summary>
    public static string Format(LeaseRef lease) =>
        string.Create(CultureInfo.InvariantCulture, $"{lease.EventId}.{lease.LeaseNo}");

    /// <summary>Formats an event id.</summary>
    public static string FormatEventId(long eventId) => eventId.ToString(CultureInfo.InvariantCulture);

    /// <summary>Parses a delivery id; false when it is not one the broker issued.</summary>
    public static bool TryParse(string? value, out LeaseRef lease)
    {
        lease = default;
        if (string.IsNullOrEmpty(value))
        {
            return false;
        }

        var dot = value.IndexOf('.', StringComparison.Ordinal);
        if (dot <= 0
            || !long.TryParse(value.AsSpan(0, dot), NumberStyles.None, CultureInfo.InvariantCulture, out var eventId)
            || !long.TryParse(value.AsSpan(dot + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var leaseNo)
            || eventId <= 0)
        {
            return false;
        }

        lease = new LeaseRef(eventId, leaseNo);
        return true;
    }

    /// <summary>Parses an event id; false when it is not one.</summary>
    public static bool TryParseEventId(string? value, out long eventId) =>
        long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out eventId) && eventId > 0;
}
