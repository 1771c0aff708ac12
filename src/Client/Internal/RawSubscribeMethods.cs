using Grpc.Core;
using HookBroker.Protocol.V1;
using HookBroker.Wire;

namespace HookBroker.Client.Internal;

/// <summary>
/// The broker's <c>Subscribe</c> method with the response's wire-compatible mirror (<c>raw_args_messages.proto</c>:
/// each delivery's args as the serialized Struct), called through the channel's <see cref="CallInvoker"/> as the
/// generated client would call it. The worker reads the args bytes straight into JSON
/// (<see cref="StructWireJsonDecoder"/>), so no Struct tree is built per delivery.
/// </summary>
internal static class RawSubscribeMethods
{
    public static readonly Method<SubscribeRequest, RawSubscribeResponse> Subscribe =
        new(
            MethodType.DuplexStreaming,
            Protocol.V1.HookBroker.Descriptor.FullName,
            "Subscribe",
            RawRaiseMethods.MarshallerFor(SubscribeRequest.Parser),
            RawRaiseMethods.MarshallerFor(RawSubscribeResponse.Parser));
}
