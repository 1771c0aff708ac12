using Grpc.Core;
using HookBroker.Protocol.V1;

namespace HookBroker.BareGrpcServer;

/// <summary>Answers every Raise at once with a fixed response: the cost of a unary gRPC call and nothing else.</summary>
internal sealed class BareHookBrokerService : Protocol.V1.HookBroker.HookBrokerBase
{
    /// <inheritdoc />
    public override Task<RaiseResponse> Raise(RaiseRequest request, ServerCallContext context) =>
        Task.FromResult(new RaiseResponse { EventId = "1", RoutedGroups = 1 });
}
