using Google.Protobuf;
using Google.Protobuf.Collections;
using Google.Protobuf.WellKnownTypes;
using HookBroker.Broker.Core;
using HookBroker.Broker.Storage;
using HookBroker.Protocol.V1;

namespace HookBroker.Broker.Tests.Storage;

/// <summary>
/// The stored payload keeps args as the serialized Struct (<c>bytes args = 1</c>). Earlier brokers stored
/// <c>google.protobuf.Struct args = 1</c>: the same field number and wire type, so rows of either version read the same
/// in both, and a delivery made from an old row carries the same args and headers.
/// </summary>
public sealed class StoredPayloadTests
{
    private static readonly Struct Args = Struct.Parser.ParseJson("""{"username":"ali","email":"ali@example.com","n":[1,{"deep":true}]}""");

    private static readonly Dictionary<string, string> Headers = new() { ["traceparent"] = "00-abc-def-01", ["schema"] = "v2" };

    // The map codec of the earlier generated code: entries of key = 1, value = 2 in field 2.
    private static readonly MapField<string, string>.Codec HeadersCodec = new(FieldCodec.ForString(10, string.Empty), FieldCodec.ForString(18, string.Empty), 18);

    [Fact]
    public void A_payload_stored_by_an_earlier_broker_reads_the_same()
    {
        var payload = StoredPayload.Parser.ParseFrom(LegacyPayload(Args, Headers));

        Assert.Equal(Args, Struct.Parser.ParseFrom(payload.Args));
        Assert.Equal(Headers, payload.Headers.ToDictionary(h => h.Key, h => h.Value));
    }

    [Fact]
    public void A_payload_stored_now_is_the_bytes_an_earlier_broker_wrote_and_reads_back()
    {
        var payload = new StoredPayload { Args = Args.ToByteString(), Headers = { Headers.Select(h => new StoredHeader { Key = h.Key, Value = h.Value }) } };

        var bytes = payload.ToByteArray();

        Assert.Equal(LegacyPayload(Args, Headers), bytes);
        var (args, headers) = ReadLegacyPayload(bytes);
        Assert.Equal(Args, args);
        Assert.Equal(Headers, new Dictionary<string, string>(headers));
    }

    [Fact]
    public void An_old_payload_with_no_args_reads_as_empty_args()
    {
        var payload = StoredPayload.Parser.ParseFrom(LegacyPayload(null, Headers));

        Assert.True(payload.Args.IsEmpty);
        Assert.Equal(new Struct(), Struct.Parser.ParseFrom(payload.Args));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_delivery_made_from_an_old_row_carries_the_args_and_headers_a_public_client_reads(bool withArgs)
    {
        var args = withArgs ? Args : null;
        var lease = new LeasedEvent(7, 3, 2, "user_created", LegacyPayload(args, Headers), "user-ali", "web", DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddSeconds(30));

        var delivery = Delivery.Parser.ParseFrom(DeliveryEncoder.Encode(lease).ToByteArray());

        Assert.Equal(args ?? new Struct(), delivery.Args);
        Assert.Equal(Headers, new Dictionary<string, string>(delivery.Headers));
        Assert.Equal("user_created", delivery.Event);
        Assert.Equal(2, delivery.Attempt);
        Assert.Equal(DeliveryId.Format(new LeaseRef(7, 3)), delivery.DeliveryId);
    }

    /// <summary>What the earlier generated <c>StoredPayload { Struct args = 1; map&lt;string, string&gt; headers = 2; }</c> wrote.</summary>
    private static byte[] LegacyPayload(Struct? args, IDictionary<string, string> headers)
    {
        using var buffer = new MemoryStream();
        var output = new CodedOutputStream(buffer);
        if (args is not null)
        {
            output.WriteTag(1, WireFormat.WireType.LengthDelimited);
            output.WriteMessage(args);
        }

        var map = new MapField<string, string> { headers };
        map.WriteTo(output, HeadersCodec);
        output.Flush();
        return buffer.ToArray();
    }

    /// <summary>How the earlier generated code read a payload.</summary>
    private static (Struct Args, MapField<string, string> Headers) ReadLegacyPayload(byte[] bytes)
    {
        var input = new CodedInputStream(bytes);
        var args = new Struct();
        var headers = new MapField<string, string>();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (tag)
            {
                case 10:
                    input.ReadMessage(args);
                    break;
                case 18:
                    headers.AddEntriesFrom(input, HeadersCodec);
                    break;
                default:
                    input.SkipLastField();
                    break;
            }
        }

        return (args, headers);
    }
}
