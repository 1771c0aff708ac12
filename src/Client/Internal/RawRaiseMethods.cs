using Google.Protobuf;
using Grpc.Core;
using HookBroker.Protocol.V1;
using HookBroker.Wire;

namespace HookBroker.Client.Internal;

/// <summary>
/// The broker's <c>Raise</c> and <c>RaiseStream</c> methods with the raise messages' wire-compatible mirrors
/// (<c>raw_args_messages.proto</c>: args as the serialized Struct), called through the channel's
/// <see cref="CallInvoker"/> as the generated client would call them. The bytes on the wire are those of the public
/// messages; only the client's in-memory form differs.
/// </summary>
internal static class RawRaiseMethods
{
    private static readonly string ServiceName = Protocol.V1.HookBroker.Descriptor.FullName;

    public static readonly Method<RawRaiseRequest, RaiseResponse> Raise =
        new(MethodType.Unary, ServiceName, "Raise", For(RawRaiseRequest.Parser), For(RaiseResponse.Parser));

    public static readonly Method<RawRaiseStreamRequest, RaiseStreamResponse> RaiseStream =
        new(MethodType.DuplexStreaming, ServiceName, "RaiseStream", For(RawRaiseStreamRequest.Parser), For(RaiseStreamResponse.Parser));

    private static Marshaller<T> For<T>(MessageParser<T> parser)
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
