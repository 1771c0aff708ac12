using Google.Protobuf.WellKnownTypes;
using HookBroker.Broker.Storage;
using HookBroker.Protocol.V1;
using Microsoft.Extensions.Logging;

namespace HookBroker.Broker.Core;

/// <summary>What the admin service does: group views, dead letters, redrive, pattern removal, group deletion.</summary>
public sealed class AdminOperations(
    IHookStore store,
    GroupRouter router,
    GroupPolicies policies,
    SubscriptionManager subscriptions,
    BrokerMetrics metrics,
    TimeProvider time,
    ILogger<AdminOperations> logger)
{
    /// <summary>Largest dead-letter page.</summary>
    public const int MaxPageSize = 1000;

    /// <summary>Every group with its counts.</summary>
    public async Task<ListGroupsResponse> ListGroupsAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var response = new ListGroupsResponse();
        foreach (var stats in await store.GetGroupStatsAsync(now, cancellationToken))
        {
            var info = new GroupInfo
            {
                Name = stats.Name,
                Backlog = stats.Backlog,
                InFlight = stats.InFlight,
                DeadLetters = stats.DeadLetters,
                OldestUnackedAge = Duration.FromTimeSpan(stats.OldestUnackedRaisedAt is { } oldest && oldest < now ? now - oldest : TimeSpan.Zero),
                ConnectedWorkers = subscriptions.WorkersOf(stats.Name),
            };
            info.Patterns.AddRange(stats.Patterns);
            response.Groups.Add(info);
        }

        return response;
    }

    /// <summary>A page of a group's dead letters.</summary>
    public async Task<ListDeadLettersResponse> ListDeadLettersAsync(ListDeadLettersRequest request, CancellationToken cancellationToken)
    {
        CheckGroup(request.Group);
        var size = request.PageSize == 0 ? 100 : request.PageSize;
        if (size is < 1 or > MaxPageSize)
        {
            throw BrokerException.Invalid($"page_size {request.PageSize} is out of range; use 1-{MaxPageSize} (0 = 100)");
        }

        long after = 0;
        if (request.PageToken.Length > 0 && !DeliveryId.TryParseEventId(request.PageToken, out after))
        {
            throw BrokerException.Invalid("page_token is not one this broker issued; pass next_page_token from the previous response");
        }

        var page = await store.ListDeadLettersAsync(request.Group, after, size, cancellationToken)
            ?? throw BrokerException.NotFound($"group '{request.Group}' does not exist");
        var response = new ListDeadLettersResponse();
        foreach (var letter in page)
        {
            var payload = StoredPayload.Parser.ParseFrom(letter.Payload.Span);
            var wire = new DeadLetter
            {
                EventId = DeliveryId.FormatEventId(letter.EventId),
                Event = letter.Label,
                Args = Struct.Parser.ParseFrom(payload.Args),
                Attempts = letter.Attempts,
                LastError = letter.LastError ?? string.Empty,
                Reason = letter.Reason,
                RaisedAt = Timestamp.FromDateTimeOffset(letter.RaisedAt),
                DeadLetteredAt = Timestamp.FromDateTimeOffset(letter.DeadLetteredAt),
                OrderingKey = letter.OrderingKey ?? string.Empty,
                Source = letter.Source ?? string.Empty,
            };
            foreach (var header in payload.Headers)
            {
                wire.Headers[header.Key] = header.Value;
            }

            response.DeadLetters.Add(wire);
        }

        response.NextPageToken = page.Count == size ? DeliveryId.FormatEventId(page[^1].EventId) : string.Empty;
        return response;
    }

    /// <summary>Moves dead letters back to the group's queue.</summary>
    public async Task<RedriveDeadLettersResponse> RedriveAsync(RedriveDeadLettersRequest request, CancellationToken cancellationToken)
    {
        CheckGroup(request.Group);
        List<long>? ids = null;
        if (request.EventIds.Count > 0)
        {
            ids = new List<long>(request.EventIds.Count);
            foreach (var id in request.EventIds)
            {
                ids.Add(DeliveryId.TryParseEventId(id, out var eventId)
                    ? eventId
                    : throw BrokerException.Invalid($"event_ids contains '{id}', which is not an event id"));
            }
        }

        var now = time.GetUtcNow();
        var count = await store.RedriveAsync(request.Group, ids, now, now + policies.For(request.Group).Retention, cancellationToken)
            ?? throw BrokerException.NotFound($"group '{request.Group}' does not exist");
        BrokerLog.Redriven(logger, request.Group, count);
        return new RedriveDeadLettersResponse { Redriven = count };
    }

    /// <summary>Removes patterns from a group.</summary>
    public async Task<RemovePatternsResponse> RemovePatternsAsync(RemovePatternsRequest request, CancellationToken cancellationToken)
    {
        CheckGroup(request.Group);
        if (request.Patterns.Count == 0)
        {
            throw BrokerException.Invalid("patterns is empty; name the patterns to remove");
        }

        var record = await store.RemoveGroupPatternsAsync(request.Group, request.Patterns, cancellationToken)
            ?? throw BrokerException.NotFound($"group '{request.Group}' does not exist");
        router.Apply(record);
        var response = new RemovePatternsResponse();
        response.Patterns.AddRange(record.Patterns);
        return response;
    }

    /// <summary>Deletes a group with its backlog and dead letters, ending its workers' streams.</summary>
    public async Task DeleteGroupAsync(DeleteGroupRequest request, CancellationToken cancellationToken)
    {
        CheckGroup(request.Group);
        if (!await store.DeleteGroupAsync(request.Group, cancellationToken))
        {
            throw BrokerException.NotFound($"group '{request.Group}' does not exist");
        }

        router.Remove(request.Group);
        subscriptions.OnGroupDeleted(request.Group);
        BrokerLog.GroupDeleted(logger, request.Group);
    }

    /// <summary>Counters since start.</summary>
    public GetStatsResponse Stats() => new()
    {
        RaisedEvents = (ulong)metrics.Raised,
        UnroutedEvents = (ulong)metrics.Unrouted,
        DuplicateRaises = (ulong)metrics.Duplicates,
        Delivered = (ulong)metrics.Delivered,
        Acked = (ulong)metrics.Acked,
        DeadLettered = (ulong)metrics.DeadLettered,
    };

    private static void CheckGroup(string group)
    {
        if (LabelRules.CheckGroup(group) is { } problem)
        {
            throw BrokerException.Invalid(problem);
        }
    }
}
