using Google.Protobuf;
using Grpc.Core;
using HookBroker.Protocol.V1;

namespace HookBroker.Client.Internal;

/// <summary>
/// The broker's <c>Raise</c> and <c>RaiseStream</c> methods with requests the SDK has already serialized
/// (<see cref="EncodedRaise"/>), called through the channel's <see cref="CallInvoker"/> as the generated client would
/// call them. The bytes on the wire are those of the public messages; only the client's in-memory form differs.
/// </summary>
internal static class RawRaiseMethods
{
    private static readonly string ServiceName = Protocol.V1.HookBroker.Descriptor.FullName;

    /// <summary>Unary <c>Raise</c>: the request is the serialized <c>RaiseRequest</c> of an <see cref="EncodedRaise"/>.</summary>
    public static readonly Method<byte[], RaiseResponse> Raise =
        new(MethodType.Unary, ServiceName, "Raise", Marshallers.Create(WriteRaise, ClientOnly<byte[]>), MarshallerFor(RaiseResponse.Parser));

    /// <summary><c>RaiseStream</c>: each request message is a batch of encoded raises (<see cref="EncodedRaiseBatch"/>).</summary>
    public static readonly Method<EncodedRaiseBatch, RaiseStreamResponse> RaiseStream =
        new(MethodType.DuplexStreaming, ServiceName, "RaiseStream", Marshallers.Create<EncodedRaiseBatch>(static (batch, context) => batch.WriteTo(context), ClientOnly<EncodedRaiseBatch>), MarshallerFor(RaiseStreamResponse.Parser));

    private static void WriteRaise(byte[] raise, SerializationContext context)
    {
        context.SetPayloadLength(raise.Length);
        var writer = context.GetBufferWriter();
        raise.CopyTo(writer.GetSpan(raise.Length));
        writer.Advance(raise.Length);
        context.Complete();
    }

    /// <summary>Requests are only ever written by the client, never read.</summary>
    private static T ClientOnly<T>(DeserializationContext context) =>
        throw new NotSupportedException("The SDK's raise requests are written by the client only.");

    /// <summary>A marshaller that writes straight into gRPC's buffer and parses from its payload (also used by <see cref="RawSubscribeMethods"/>).</summary>
    internal static Marshaller<T> MarshallerFor<T>(MessageParser<T> parser)
        where T : class, IMessage<T> =>
        Marshallers.Create<T>(
            static (message, context) =>
            {
                context.SetPayloadLength(message.CalculateSize());
                message.WriteTo(context.GetBufferWriter());
                context.Complete();
            },
            context => parser.ParseFrom(context.PayloadAsReadOnlySequence()));
}
