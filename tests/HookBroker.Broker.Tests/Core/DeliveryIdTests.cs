using HookBroker.Broker.Core;
using HookBroker.Broker.Storage;

namespace HookBroker.Broker.Tests.Core;

/// <summary>The wire form of event and delivery ids.</summary>
public sealed class DeliveryIdTests
{
    [Theory]
    [InlineData(1L, 0L, "1.0")]
    [InlineData(42L, 7L, "42.7")]
    [InlineData(long.MaxValue, long.MaxValue, "9223372036854775807.9223372036854775807")]
    public void A_delivery_id_round_trips(long eventId, long leaseNo, string expected)
    {
        var lease = new LeaseRef(eventId, leaseNo);

        var text = DeliveryId.Format(lease);

        Assert.Equal(expected, text);
        Assert.True(DeliveryId.TryParse(text, out var parsed));
        Assert.Equal(lease, parsed);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("nope")]
    [InlineData("42")]
    [InlineData(".")]
    [InlineData("42.")]
    [InlineData(".7")]
    [InlineData("0.7")]
    [InlineData("-1.7")]
    [InlineData("42.-7")]
    [InlineData("+42.7")]
    [InlineData(" 42.7")]
    [InlineData("42.7 ")]
    [InlineData("42.7.1")]
    [InlineData("42,7")]
    [InlineData("4a.7")]
    [InlineData("42.0x7")]
    [InlineData("99999999999999999999.7")]
    [InlineData("42.99999999999999999999")]
    [InlineData("\u0664\u0662.\u0667")]
    public void Garbage_is_not_a_delivery_id(string? text)
    {
        Assert.False(DeliveryId.TryParse(text, out var lease));
        Assert.Equal(default, lease);
    }

    [Theory]
    [InlineData(1L)]
    [InlineData(123456789L)]
    [InlineData(long.MaxValue)]
    public void An_event_id_round_trips(long eventId)
    {
        Assert.True(DeliveryId.TryParseEventId(DeliveryId.FormatEventId(eventId), out var parsed));
        Assert.Equal(eventId, parsed);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("abc")]
    [InlineData("1.1")]
    [InlineData(" 1")]
    [InlineData("99999999999999999999")]
    public void Garbage_is_not_an_event_id(string? text) => Assert.False(DeliveryId.TryParseEventId(text, out _));
}
