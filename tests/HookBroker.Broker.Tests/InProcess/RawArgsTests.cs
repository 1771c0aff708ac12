using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Net.Client;
using HookBroker.Broker.Tests.Core;
using HookBroker.Wire;
using HookBroker.Protocol.V1;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace HookBroker.Broker.Tests.InProcess;

/// <summary>
/// Args travel as the bytes the client sent: checked on the wire format, stored and delivered as they are. Bytes no
/// serializer would write (sent here with the broker's own raw-args message) are refused per raise, and a public client
/// sees every delivery as before.
/// </summary>
public sealed class RawArgsTests : IAsyncLifetime
{
    private const string Service = "hookbroker.v1.HookBroker";

    private static readonly Method<RawRaiseRequest, RaiseResponse> RawRaise =
        new(MethodType.Unary, Service, "Raise", MarshallerOf(RawRaiseRequest.Parser), MarshallerOf(RaiseResponse.Parser));

    private static readonly Method<RawRaiseStreamRequest, RaiseStreamResponse> RawRaiseStream =
        new(MethodType.DuplexStreaming, Service, "RaiseStream", MarshallerOf(RawRaiseStreamRequest.Parser), MarshallerOf(RaiseStreamResponse.Parser));

    private BrokerTestHost _broker = null!;
    private GrpcChannel _channel = null!;

    public async ValueTask InitializeAsync()
    {
        _broker = await BrokerTestHost.StartAsync();
        var server = (TestServer)_broker.Services.GetRequiredService<IServer>();
        _channel = GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions { HttpHandler = server.CreateHandler() });
    }

    public async ValueTask DisposeAsync()
    {
        Assert.Empty(_broker.Logs.Errors);
        _channel.Dispose();
        await _broker.DisposeAsync();
    }

    [Theory(Timeout = 30_000)]
    [InlineData(new byte[] { 0x0A, 0x05, 0x0A }, "field 1 claims 5 bytes, more than the 1 left in its enclosing Struct at byte 1")]
    [InlineData(new byte[] { 0x0A, 0x06, 0x0A, 0x01, 0xFF, 0x12, 0x01, 0x00 }, "a key is not valid UTF-8 at byte 4")]
    [InlineData(new byte[] { 0x0A, 0x07, 0x0A, 0x01, 0x6B, 0x12, 0x02, 0x1A, 0x01 }, "field 3 claims 1 bytes, more than the 0 left in its enclosing Value at byte 8")]
    [InlineData(new byte[] { 0x1B, 0x1C }, "field 3 is a group (wire type 3), which a Struct never has at byte 1")]
    public async Task Malformed_args_bytes_are_invalid_argument_naming_the_problem_and_the_broker_keeps_serving(byte[] args, string problem)
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);

        var error = await Assert.ThrowsAsync<RpcException>(() => RaiseRawAsync(args));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal($"args are not a valid google.protobuf.Struct (a JSON object): {problem}", error.Status.Detail);
        Assert.Null(await worker.NothingWithinAsync(TimeSpan.FromMilliseconds(50)));
        var raised = await _broker.RaiseAsync("user_created", new { ok = true });
        Assert.Equal(raised.EventId, (await worker.NextAsync()).EventId);
    }

    [Fact(Timeout = 30_000)]
    public async Task Invalid_UTF8_in_a_string_value_is_refused_rather_than_delivered_to_parsers_that_would_reject_it()
    {
        byte[] args = [.. WireBytes.Entry("name"u8.ToArray(), WireBytes.StringValue([0x61, 0xC3, 0x28]))];

        var error = await Assert.ThrowsAsync<RpcException>(() => RaiseRawAsync(args));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("a string value is not valid UTF-8", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact(Timeout = 30_000)]
    public async Task Nesting_far_past_protobufs_parse_limit_is_measured_and_refused_naming_the_depth_limit()
    {
        var args = WireBytes.NestedStructs(15_000);
        Assert.InRange(args.Length, 1, 256 * 1024);

        var error = await Assert.ThrowsAsync<RpcException>(() => RaiseRawAsync(args));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal("args are nested 15000 levels deep; the limit is 32 (HookBroker:MaxArgsDepth)", error.Status.Detail);
    }

    [Fact(Timeout = 30_000)]
    public async Task Args_reach_the_worker_as_the_exact_bytes_raised_unknown_fields_included()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        var known = Struct.Parser.ParseJson("""{"username":"ali","roles":["admin",{"since":2020}],"active":true,"score":null}""");
        byte[] args = [.. known.ToByteArray(), .. WireBytes.Tag(99, WireBytes.Varint), 42];

        var raised = await RaiseRawAsync(args);
        var delivery = await worker.NextAsync();

        Assert.Equal(raised.EventId, delivery.EventId);
        Assert.Equal(known.Fields, delivery.Args.Fields);
        Assert.Equal(args, delivery.Args.ToByteArray());
    }

    [Fact(Timeout = 30_000)]
    public async Task A_raise_without_args_is_delivered_with_an_empty_object_not_a_missing_one()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);

        await _broker.Client.RaiseAsync(new RaiseRequest { Event = "user_created" }, cancellationToken: TestContext.Current.CancellationToken);
        var delivery = await worker.NextAsync();

        Assert.NotNull(delivery.Args);
        Assert.Empty(delivery.Args.Fields);
    }

    [Fact(Timeout = 30_000)]
    public async Task RaiseStream_answers_a_malformed_item_with_its_own_status_and_stores_the_others()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        using var call = _channel.CreateCallInvoker().AsyncDuplexStreamingCall(RawRaiseStream, null, new CallOptions(cancellationToken: TestContext.Current.CancellationToken));
        var good = Struct.Parser.ParseJson("""{"n":1}""").ToByteString();
        var request = new RawRaiseStreamRequest
        {
            Items =
            {
                new RawRaiseItem { Sequence = 1, Raise = new RawRaiseRequest { Event = "user_created", Args = good } },
                new RawRaiseItem { Sequence = 2, Raise = new RawRaiseRequest { Event = "user_created", Args = ByteString.CopyFrom(0x0A, 0x09) } },
                new RawRaiseItem { Sequence = 3, Raise = new RawRaiseRequest { Event = "user_created", Args = good } },
            },
        };

        await call.RequestStream.WriteAsync(request, TestContext.Current.CancellationToken);
        var results = new Dictionary<ulong, RaiseResult>();
        while (results.Count < 3 && await call.ResponseStream.MoveNext(TestContext.Current.CancellationToken))
        {
            foreach (var result in call.ResponseStream.Current.Results)
            {
                results.Add(result.Sequence, result);
            }
        }

        Assert.Equal((int)StatusCode.OK, results[1].Status.Code);
        Assert.Equal((int)StatusCode.InvalidArgument, results[2].Status.Code);
        Assert.Contains("args are not a valid google.protobuf.Struct", results[2].Status.Message, StringComparison.Ordinal);
        Assert.Equal((int)StatusCode.OK, results[3].Status.Code);
        var delivered = await worker.TakeAsync(2);
        Assert.All(delivered, d => Assert.Equal(1, d.Args.Fields["n"].NumberValue));
        await call.RequestStream.CompleteAsync();
    }

    [Fact(Timeout = 30_000)]
    public async Task A_header_key_sent_again_and_again_keeps_its_last_value_and_counts_once_as_in_the_public_map()
    {
        // The broker reads headers as the map's wire entries; a map keeps a repeated key once, with its last value.
        // 65 entries of one key are one header (the limit is 64), as a client generated from the public proto reads them.
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        var request = new RawRaiseRequest { Event = "user_created" };
        request.Headers.Add(new HeaderEntry { Key = "b", Value = "first" });
        request.Headers.Add(Enumerable.Range(0, 65).Select(i => new HeaderEntry { Key = "a", Value = $"v{i}" }));
        request.Headers.Add(new HeaderEntry { Key = "c", Value = "last" });
        var asPublicMap = RaiseRequest.Parser.ParseFrom(request.ToByteArray()).Headers;

        await _channel.CreateCallInvoker().AsyncUnaryCall(RawRaise, null, new CallOptions(cancellationToken: TestContext.Current.CancellationToken), request);
        var delivery = await worker.NextAsync();

        Assert.Equal([("b", "first"), ("a", "v64"), ("c", "last")], delivery.Headers.Select(h => (h.Key, h.Value)));
        Assert.Equal(asPublicMap.Select(h => (h.Key, h.Value)), delivery.Headers.Select(h => (h.Key, h.Value)));
    }

    private async Task<RaiseResponse> RaiseRawAsync(byte[] args) =>
        await _channel.CreateCallInvoker().AsyncUnaryCall(
            RawRaise,
            null,
            new CallOptions(cancellationToken: TestContext.Current.CancellationToken),
            new RawRaiseRequest { Event = "user_created", Args = ByteString.CopyFrom(args) });

    private static Marshaller<T> MarshallerOf<T>(MessageParser<T> parser)
        where T : IMessage<T> =>
        Marshallers.Create(message => message.ToByteArray(), parser.ParseFrom);
}
