using Google.Protobuf;
using Grpc.Core;
using HookBroker.Wire;
using HookBroker.Protocol.V1;

namespace HookBroker.Broker.Services;

/// <summary>
/// Binds the public <c>hookbroker.v1.HookBroker</c> service like the generated code does (same names, same descriptor,
/// so reflection, grpcurl and every generated client see no difference), with two differences:
/// <list type="bullet">
/// <item>Raise, RaiseStream and Subscribe use the broker's wire-compatible mirrors of the messages that carry args
/// (<c>Wire/raw_args_messages.proto</c>), in which args stay serialized bytes: the broker checks them on the wire
/// format and never parses or re-serializes them.</item>
/// <item>Request marshallers answer an unparseable request with INVALID_ARGUMENT naming the problem. The generated ones
/// fail before any handler or interceptor runs, so a client would get UNKNOWN.</item>
/// </list>
/// </summary>
internal static class HookBrokerBinding
{
    private const string ServiceName = "hookbroker.v1.HookBroker";

    private static readonly Method<RawRaiseRequest, RaiseResponse> RaiseMethod =
        new(MethodType.Unary, ServiceName, "Raise", For(RawRaiseRequest.Parser), For(RaiseResponse.Parser));

    private static readonly Method<RawRaiseStreamRequest, RaiseStreamResponse> RaiseStreamMethod =
        new(MethodType.DuplexStreaming, ServiceName, "RaiseStream", For(RawRaiseStreamRequest.Parser), For(RaiseStreamResponse.Parser));

    private static readonly Method<WatchInterestRequest, InterestSnapshot> WatchInterestMethod =
        new(MethodType.ServerStreaming, ServiceName, "WatchInterest", For(WatchInterestRequest.Parser), For(InterestSnapshot.Parser));

    private static readonly Method<SubscribeRequest, RawSubscribeResponse> SubscribeMethod =
        new(MethodType.DuplexStreaming, ServiceName, "Subscribe", For(SubscribeRequest.Parser), For(RawSubscribeResponse.Parser));

    /// <summary>The service's descriptor (what gRPC reflection serves): the public one.</summary>
    public static Google.Protobuf.Reflection.ServiceDescriptor Descriptor => Protocol.V1.HookBroker.Descriptor;

    /// <summary>Registers the service's methods (called by grpc-dotnet through <see cref="BindServiceMethodAttribute"/>).</summary>
    public static void BindService(ServiceBinderBase serviceBinder, ServiceBase? serviceImpl)
    {
        ArgumentNullException.ThrowIfNull(serviceBinder);
        serviceBinder.AddMethod(RaiseMethod, serviceImpl is null ? null : serviceImpl.Raise);
        serviceBinder.AddMethod(RaiseStreamMethod, serviceImpl is null ? null : serviceImpl.RaiseStream);
        serviceBinder.AddMethod(WatchInterestMethod, serviceImpl is null ? null : serviceImpl.WatchInterest);
        serviceBinder.AddMethod(SubscribeMethod, serviceImpl is null ? null : serviceImpl.Subscribe);
    }

    private static Marshaller<T> For<T>(MessageParser<T> parser)
        where T : class, IMessage<T> =>
        Marshallers.Create<T>(
            static (message, context) =>
            {
                context.SetPayloadLength(message.CalculateSize());
                message.WriteTo(context.GetBufferWriter());
                context.Complete();
            },
            context => Parse(parser, context));

    private static T Parse<T>(MessageParser<T> parser, DeserializationContext context)
        where T : class, IMessage<T>
    {
        try
        {
            return parser.ParseFrom(context.PayloadAsReadOnlySequence());
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"the request is not a valid {PublicName(typeof(T))} message: {ex.Message}"));
        }
    }

    /// <summary>The public message a request type stands for (a mirror is named after its public message).</summary>
    private static string PublicName(Type type)
    {
        var name = type.Name;
        return name.StartsWith("Raw", StringComparison.Ordinal) ? name["Raw".Length..] : name;
    }

    /// <summary>The service's handlers; the broker's implementation derives from it.</summary>
    [BindServiceMethod(typeof(HookBrokerBinding), nameof(BindService))]
    internal abstract class ServiceBase
    {
        /// <summary>See the proto: raises one event.</summary>
        public abstract Task<RaiseResponse> Raise(RawRaiseRequest request, ServerCallContext context);

        /// <summary>See the proto: many raises per message.</summary>
        public abstract Task RaiseStream(IAsyncStreamReader<RawRaiseStreamRequest> requestStream, IServerStreamWriter<RaiseStreamResponse> responseStream, ServerCallContext context);

        /// <summary>See the proto: the patterns that have a group.</summary>
        public abstract Task WatchInterest(WatchInterestRequest request, IServerStreamWriter<InterestSnapshot> responseStream, ServerCallContext context);

        /// <summary>See the proto: a worker's stream.</summary>
        public abstract Task Subscribe(IAsyncStreamReader<SubscribeRequest> requestStream, IServerStreamWriter<RawSubscribeResponse> responseStream, ServerCallContext context);
    }
}
