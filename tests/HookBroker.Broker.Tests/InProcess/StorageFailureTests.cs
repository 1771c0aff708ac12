using Grpc.Core;
using HookBroker.Broker.Storage;
using HookBroker.Broker.Storage.Memory;
using HookBroker.Protocol.V1;
using Microsoft.Extensions.DependencyInjection;

namespace HookBroker.Broker.Tests.InProcess;

/// <summary>A storage failure is answered with a status that says what happened; the broker and the stream go on.</summary>
public sealed class StorageFailureTests : IAsyncLifetime
{
    private readonly FlakyStore _store = new(new MemoryHookStore());
    private BrokerTestHost _broker = null!;

    public async ValueTask InitializeAsync() =>
        _broker = await BrokerTestHost.StartAsync(configureServices: services => services.AddSingleton<IHookStore>(_store));

    public async ValueTask DisposeAsync() => await _broker.DisposeAsync();

    [Fact(Timeout = 30_000)]
    public async Task A_full_disk_fails_a_raise_with_resource_exhausted_naming_it_and_the_next_raise_works()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        _store.FailAppends = new StorageFullException("storage is full: the disk holding /data/hookbroker.db has no room left");

        var refused = await Assert.ThrowsAsync<RpcException>(() => _broker.RaiseAsync("user_created"));
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Contains("storage is full", refused.Status.Detail, StringComparison.Ordinal);

        _store.FailAppends = null;
        Assert.Equal(1, (await _broker.RaiseAsync("user_created")).RoutedGroups);
        Assert.Empty(_broker.Logs.Errors);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_failing_batch_in_a_raise_stream_answers_its_items_and_the_stream_goes_on()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        using var call = _broker.Client.RaiseStream(cancellationToken: TestContext.Current.CancellationToken);
        var ct = TestContext.Current.CancellationToken;

        _store.FailAppends = new InvalidOperationException("disk I/O error");
        await call.RequestStream.WriteAsync(Batch(1, 2, 3), ct);
        var failed = await ReadResultsAsync(call.ResponseStream, 3);
        Assert.All(failed, r => Assert.Equal((int)StatusCode.Internal, r.Status.Code));
        Assert.Equal([1UL, 2UL, 3UL], failed.Select(r => r.Sequence).Order().ToArray());

        _store.FailAppends = null;
        await call.RequestStream.WriteAsync(Batch(4, 5), ct);
        var stored = await ReadResultsAsync(call.ResponseStream, 2);
        Assert.All(stored, r => Assert.Equal(0, r.Status.Code));
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext(ct));

        // The unexpected failure was logged once; nothing else went wrong.
        Assert.Single(_broker.Logs.Errors);
    }

    private static RaiseStreamRequest Batch(params ulong[] sequences)
    {
        var request = new RaiseStreamRequest();
        foreach (var sequence in sequences)
        {
            request.Items.Add(new RaiseItem { Sequence = sequence, Raise = new RaiseRequest { Event = "user_created" } });
        }

        return request;
    }

    private static async Task<List<RaiseResult>> ReadResultsAsync(IAsyncStreamReader<RaiseStreamResponse> responses, int count)
    {
        var results = new List<RaiseResult>();
        while (results.Count < count && await responses.MoveNext(TestContext.Current.CancellationToken))
        {
            results.AddRange(responses.Current.Results);
        }

        return results;
    }

    /// <summary>The memory engine, with appends that fail on demand.</summary>
    private sealed class FlakyStore(IHookStore inner) : IHookStore
    {
        public Exception? FailAppends { get; set; }

        public ValueTask<IReadOnlyList<AppendResult>> AppendAsync(IReadOnlyList<NewEvent> events, DateTimeOffset now, CancellationToken cancellationToken) =>
            FailAppends is { } failure ? ValueTask.FromException<IReadOnlyList<AppendResult>>(failure) : inner.AppendAsync(events, now, cancellationToken);

        public ValueTask InitializeAsync(IHookStoreListener listener, DateTimeOffset now, CancellationToken cancellationToken) => inner.InitializeAsync(listener, now, cancellationToken);

        public ValueTask<IReadOnlyList<GroupRecord>> ListGroupsAsync(CancellationToken cancellationToken) => inner.ListGroupsAsync(cancellationToken);

        public ValueTask<GroupRecord> AddGroupPatternsAsync(string group, IReadOnlyCollection<string> patterns, DateTimeOffset now, CancellationToken cancellationToken) => inner.AddGroupPatternsAsync(group, patterns, now, cancellationToken);

        public ValueTask<GroupRecord?> RemoveGroupPatternsAsync(string group, IReadOnlyCollection<string> patterns, CancellationToken cancellationToken) => inner.RemoveGroupPatternsAsync(group, patterns, cancellationToken);

        public ValueTask<bool> DeleteGroupAsync(string group, CancellationToken cancellationToken) => inner.DeleteGroupAsync(group, cancellationToken);

        public ValueTask<LeaseBatch> LeaseAsync(LeaseRequest request, CancellationToken cancellationToken) => inner.LeaseAsync(request, cancellationToken);

        public ValueTask<IReadOnlyList<SettleResult>> SettleAsync(string group, IReadOnlyList<SettleItem> items, DateTimeOffset now, CancellationToken cancellationToken) => inner.SettleAsync(group, items, now, cancellationToken);

        public ValueTask<IReadOnlyList<OutcomeNotice>> ReleaseAsync(string group, IReadOnlyList<ReleaseItem> leases, string reason, DateTimeOffset now, CancellationToken cancellationToken) => inner.ReleaseAsync(group, leases, reason, now, cancellationToken);

        public ValueTask<ExpiryResult> ExpireAsync(DateTimeOffset now, IGroupPolicies policies, int maxItems, CancellationToken cancellationToken) => inner.ExpireAsync(now, policies, maxItems, cancellationToken);

        public ValueTask<IReadOnlyList<OutcomeNotice?>> GetOutcomesAsync(long eventId, IReadOnlyList<string> groups, CancellationToken cancellationToken) => inner.GetOutcomesAsync(eventId, groups, cancellationToken);

        public ValueTask<IReadOnlyList<GroupStats>> GetGroupStatsAsync(DateTimeOffset now, CancellationToken cancellationToken) => inner.GetGroupStatsAsync(now, cancellationToken);

        public ValueTask<IReadOnlyList<DeadLetterRecord>?> ListDeadLettersAsync(string group, long afterEventId, int limit, CancellationToken cancellationToken) => inner.ListDeadLettersAsync(group, afterEventId, limit, cancellationToken);

        public ValueTask<int?> RedriveAsync(string group, IReadOnlyList<long>? eventIds, DateTimeOffset now, DateTimeOffset retainUntil, CancellationToken cancellationToken) => inner.RedriveAsync(group, eventIds, now, retainUntil, cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
