using Grpc.Core;
using HookBroker.Broker.Core;
using HookBroker.Protocol.V1;

namespace HookBroker.Broker.Services;

/// <summary>The admin service: thin, the work is in <see cref="AdminOperations"/>.</summary>
public sealed class HookBrokerAdminService(AdminOperations admin) : HookBrokerAdmin.HookBrokerAdminBase
{
    /// <inheritdoc />
    public override Task<ListGroupsResponse> ListGroups(ListGroupsRequest request, ServerCallContext context) =>
        admin.ListGroupsAsync(context.CancellationToken);

    /// <inheritdoc />
    public override Task<ListDeadLettersResponse> ListDeadLetters(ListDeadLettersRequest request, ServerCallContext context) =>
        admin.ListDeadLettersAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<RedriveDeadLettersResponse> RedriveDeadLetters(RedriveDeadLettersRequest request, ServerCallContext context) =>
        admin.RedriveAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<RemovePatternsResponse> RemovePatterns(RemovePatternsRequest request, ServerCallContext context) =>
        admin.RemovePatternsAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override async Task<DeleteGroupResponse> DeleteGroup(DeleteGroupRequest request, ServerCallContext context)
    {
        await admin.DeleteGroupAsync(request, context.CancellationToken);
        return new DeleteGroupResponse();
    }

    /// <inheritdoc />
    public override Task<GetStatsResponse> GetStats(GetStatsRequest request, ServerCallContext context) =>
        Task.FromResult(admin.Stats());
}
