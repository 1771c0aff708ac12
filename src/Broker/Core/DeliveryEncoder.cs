using Google.Protobuf.WellKnownTypes;
using HookBroker.Wire;
using HookBroker.Broker.Storage;

namespace HookBroker.Broker.Core;

/// <summary>
/// Turns a leased event into the delivery a worker receives. The stored args bytes (the serialized Struct, as raised)
/// are written to the delivery as they are, never parsed.
/// </summary>
internal static class DeliveryEncoder
{
    /// <summary>The delivery message for <paramref name="lease"/>.</summary>
    public static RawDelivery Encode(LeasedEvent lease)
    {
        var payload = StoredPayload.Parser.ParseFrom(lease.Payload.Span);
        var delivery = new RawDelivery
        {
            DeliveryId = DeliveryId.Format(new LeaseRef(lease.EventId, lease.LeaseNo)),
            EventId = DeliveryId.FormatEventId(lease.EventId),
            Event = lease.Label,
            // Always set, also when empty: an empty object is sent as an empty Struct, as the public message sends it.
            Args = payload.Args,
            Attempt = lease.Attempt,
            RaisedAt = Timestamp.FromDateTimeOffset(lease.RaisedAt),
            Source = lease.Source ?? string.Empty,
            OrderingKey = lease.OrderingKey ?? string.Empty,
            LeaseExpiresAt = Timestamp.FromDateTimeOffset(lease.LeaseUntil),
        };
        // An indexed loop: RepeatedField's enumerator is an allocated iterator, also when it is empty.
        for (var i = 0; i < payload.Headers.Count; i++)
        {
            delivery.Headers.Add(new HeaderEntry { Key = payload.Headers[i].Key, Value = payload.Headers[i].Value });
        }

        return delivery;
    }
}
