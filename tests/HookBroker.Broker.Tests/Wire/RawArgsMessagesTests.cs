using Google.Protobuf;
using Google.Protobuf.Reflection;
using Google.Protobuf.WellKnownTypes;
using HookBroker.Wire;
using HookBroker.Protocol.V1;

namespace HookBroker.Broker.Tests.Wire;

/// <summary>
/// The broker's mirrors of the public messages that carry args (args as bytes) are wire-compatible with them: same
/// fields, and the same bytes both ways, so clients generated from the public proto see no difference.
/// </summary>
public sealed class RawArgsMessagesTests
{
    private static readonly Struct SampleArgs = Struct.Parser.ParseJson("""{"username":"ali","tags":["a",{"b":[1,null,true]}],"n":2.5}""");

    public static TheoryData<string> MirroredMessages() =>
        ["RaiseRequest", "RaiseItem", "RaiseStreamRequest", "SubscribeResponse", "Delivery"];

    [Theory]
    [MemberData(nameof(MirroredMessages))]
    public void Each_mirror_has_its_public_messages_fields_with_args_as_bytes(string name)
    {
        var publicMessage = HookbrokerReflection.Descriptor.FindTypeByName<MessageDescriptor>(name);
        var mirror = RawArgsMessagesReflection.Descriptor.FindTypeByName<MessageDescriptor>("Raw" + name);

        Assert.Equal(publicMessage.Fields.InFieldNumberOrder().Select(f => f.FieldNumber), mirror.Fields.InFieldNumberOrder().Select(f => f.FieldNumber));
        foreach (var field in publicMessage.Fields.InFieldNumberOrder())
        {
            var mirrored = mirror.FindFieldByNumber(field.FieldNumber);
            Assert.Equal(field.Name, mirrored.Name);
            Assert.Equal(field.IsRepeated, mirrored.IsRepeated);
            if (field.FieldType == FieldType.Message && field.MessageType == Struct.Descriptor)
            {
                Assert.Equal("args", field.Name);
                Assert.Equal(FieldType.Bytes, mirrored.FieldType);
            }
            else if (field.FieldType == FieldType.Message && !field.IsMap)
            {
                Assert.Equal(FieldType.Message, mirrored.FieldType);
                Assert.True(
                    mirrored.MessageType == field.MessageType || mirrored.MessageType.Name == "Raw" + field.MessageType.Name,
                    $"{mirror.Name}.{mirrored.Name} is a {mirrored.MessageType.FullName}, neither {field.MessageType.FullName} nor its mirror");
            }
            else if (field.IsMap)
            {
                // A map is repeated entries of key = 1 and value = 2 on the wire; the mirror declares those entries.
                Assert.False(mirrored.IsMap);
                Assert.Equal(FieldType.Message, mirrored.FieldType);
                Assert.Equal([1, 2], mirrored.MessageType.Fields.InFieldNumberOrder().Select(f => f.FieldNumber));
                foreach (var number in new[] { 1, 2 })
                {
                    Assert.Equal(field.MessageType.FindFieldByNumber(number).Name, mirrored.MessageType.FindFieldByNumber(number).Name);
                    Assert.Equal(field.MessageType.FindFieldByNumber(number).FieldType, mirrored.MessageType.FindFieldByNumber(number).FieldType);
                }
            }
            else
            {
                Assert.Equal(field.FieldType, mirrored.FieldType);
            }
        }
    }

    [Fact]
    public void A_public_raise_request_reads_as_a_raw_one_with_the_serialized_struct_and_writes_the_same_bytes()
    {
        var request = new RaiseRequest
        {
            Event = "user_created",
            Args = SampleArgs,
            Headers = { ["traceparent"] = "00-abc-def-01", ["schema"] = "v2" },
            IdempotencyKey = "key-1",
            OrderingKey = "user-ali",
            WaitTimeout = Duration.FromTimeSpan(TimeSpan.FromSeconds(5)),
            Source = "web",
        };

        var raw = AssertSameBytes(request, RawRaiseRequest.Parser, RaiseRequest.Parser);

        Assert.Equal(SampleArgs.ToByteString(), raw.Args);
    }

    [Fact]
    public void A_public_raise_stream_request_reads_as_a_raw_one_and_writes_the_same_bytes()
    {
        var request = new RaiseStreamRequest
        {
            Items =
            {
                new RaiseItem { Sequence = 1, Raise = new RaiseRequest { Event = "a", Args = SampleArgs } },
                new RaiseItem { Sequence = 2, Raise = new RaiseRequest { Event = "b" } },
                new RaiseItem { Sequence = 3 },
            },
        };

        var raw = AssertSameBytes(request, RawRaiseStreamRequest.Parser, RaiseStreamRequest.Parser);

        Assert.Equal(SampleArgs.ToByteString(), raw.Items[0].Raise.Args);
        Assert.True(raw.Items[1].Raise.Args.IsEmpty);
    }

    [Fact]
    public void A_raw_subscribe_response_is_the_public_one_byte_for_byte()
    {
        var response = new SubscribeResponse
        {
            Subscribed = new Subscribed { Group = "g", WorkerId = "w1", MaxInFlight = 10, AckDeadline = Duration.FromTimeSpan(TimeSpan.FromSeconds(30)) },
            Deliveries = { FullDelivery(SampleArgs), FullDelivery(new Struct()) },
            Confirmations = { new SettleConfirmation { DeliveryId = "d", Kind = SettleKind.Ack, Status = SettleStatus.Confirmed } },
            Heartbeat = new Heartbeat { ServerTime = Timestamp.FromDateTimeOffset(DateTimeOffset.UnixEpoch.AddDays(1)) },
        };

        var raw = AssertSameBytes(response, RawSubscribeResponse.Parser, SubscribeResponse.Parser);

        Assert.Equal(SampleArgs.ToByteString(), raw.Deliveries[0].Args);
    }

    [Fact]
    public void A_delivery_with_empty_args_reaches_a_public_client_as_an_empty_object_not_a_missing_one()
    {
        var raw = new RawDelivery { DeliveryId = "d", Args = ByteString.Empty };

        var delivery = Delivery.Parser.ParseFrom(raw.ToByteArray());

        Assert.NotNull(delivery.Args);
        Assert.Empty(delivery.Args.Fields);
        Assert.Equal(new Delivery { DeliveryId = "d", Args = new Struct() }.ToByteArray(), raw.ToByteArray());
    }

    private static TRaw AssertSameBytes<TPublic, TRaw>(TPublic message, MessageParser<TRaw> rawParser, MessageParser<TPublic> publicParser)
        where TPublic : IMessage<TPublic>
        where TRaw : IMessage<TRaw>
    {
        var bytes = message.ToByteArray();
        var raw = rawParser.ParseFrom(bytes);
        Assert.Equal(bytes, raw.ToByteArray());
        Assert.Equal(message, publicParser.ParseFrom(raw.ToByteArray()));
        return raw;
    }

    private static Delivery FullDelivery(Struct args) => new()
    {
        DeliveryId = "1.1",
        EventId = "1",
        Event = "user_created",
        Args = args,
        Headers = { ["traceparent"] = "00-abc-def-01" },
        Attempt = 2,
        RaisedAt = Timestamp.FromDateTimeOffset(DateTimeOffset.UnixEpoch.AddHours(1)),
        Source = "web",
        OrderingKey = "user-ali",
        LeaseExpiresAt = Timestamp.FromDateTimeOffset(DateTimeOffset.UnixEpoch.AddHours(2)),
    };
}
