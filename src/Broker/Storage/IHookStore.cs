namespace HookBroker.Broker.Storage;

/// <summary>
/// The storage contract every engine (memory, SQLite, Redis) implements and the one contract test suite checks.
/// </summary>
/// <remarks>
/// <para>Rules every engine follows:</para>
/// <list type="bullet">
/// <item>Engines never read a clock: every time they need comes in as an absolute <see cref="DateTimeOffset"/> computed
/// by the dispatcher from its <see cref="TimeProvider"/>.</item>
/// <item>Every operation is batched; a task completes only once its effects are durable for the engine (an ack
/// confirmed by <see cref="SettleAsync"/> is never undone; an append acknowledged is never lost).</item>
/// <item>Outcomes, appends and group changes are reported to the attached <see cref="IHookStoreListener"/> after they are
/// durable, including those made by other broker nodes sharing the engine (Redis), so a dispatcher reacts to one
/// feed.</item>
/// <item>Delivery state (pending, leased, attempts, retry due time, ordering, dead letters) lives in the engine, so a
/// broker node can die at any moment and another node carries on.</item>
/// <item>Concurrent calls are merged by the engine into group commits (SQLite: one writer, one transaction per batch of
/// queued operations; Redis: pipelining), so callers need not batch across requests themselves.</item>
/// </list>
/// <para>Choices every engine makes the same way (the contract suite pins most of them):</para>
/// <list type="bullet">
/// <item>An event routed only to groups that no longer exist is <see cref="AppendStatus.Stored"/> with no deliveries;
/// routed to some missing groups, it is stored for the others and <see cref="AppendResult.Groups"/> lists only those.</item>
/// <item><see cref="LeaseBatch.NextDueAt"/> may ignore a delayed retry blocked behind an earlier event of its ordering
/// key: it becomes deliverable on a settlement, which wakes the group anyway.</item>
/// <item><see cref="GetOutcomesAsync"/> reports <see cref="OutcomeKind.Handled"/> for a group where the event is neither
/// in the backlog nor in dead letters (acked, or the group is gone), and for a retry in progress the current attempt with
/// the last error.</item>
/// <item><see cref="IHookStoreListener.OnGroupsChanged"/> fires only when something changed; releases, lease expiry,
/// redrive and restart recovery make deliveries due at the operation's <c>now</c>.</item>
/// <item><see cref="ExpireAsync"/> handles expired leases before retention, and redrive clears the last error.</item>
/// </list>
/// </remarks>
public interface IHookStore : IAsyncDisposable
{
    /// <summary>Opens the engine (creates schema, recovers). Called once before any other operation.</summary>
    ValueTask InitializeAsync(IHookStoreListener listener, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Every group and its patterns.</summary>
    ValueTask<IReadOnlyList<GroupRecord>> ListGroupsAsync(CancellationToken cancellationToken);

    /// <summary>Creates the group if missing and adds the patterns to its union. Returns the group after the change.</summary>
    ValueTask<GroupRecord> AddGroupPatternsAsync(string group, IReadOnlyCollection<string> patterns, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Removes patterns from a group; null when the group does not exist.</summary>
    ValueTask<GroupRecord?> RemoveGroupPatternsAsync(string group, IReadOnlyCollection<string> patterns, CancellationToken cancellationToken);

    /// <summary>Deletes a group with its backlog and dead letters. False when it did not exist.</summary>
    ValueTask<bool> DeleteGroupAsync(string group, CancellationToken cancellationToken);

    /// <summary>
    /// Stores a batch of events (one group commit). Per item: stored (new id), duplicate (idempotency key seen and not
    /// expired at <paramref name="now"/>: the first event's id and groups, nothing stored), or rejected because a
    /// group's backlog is at its limit (nothing stored for that item). Items are processed in order, so a key repeated
    /// inside one batch is a duplicate of its first occurrence.
    /// </summary>
    ValueTask<IReadOnlyList<AppendResult>> AppendAsync(IReadOnlyList<NewEvent> events, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Leases up to <see cref="LeaseRequest.Max"/> deliverable events of a group to one worker: pending, due at or
    /// before <see cref="LeaseRequest.Now"/>, matching the worker's filter, and first of their ordering key (no
    /// earlier unfinished event with the same key in this group). Oldest event first. Each lease increments the attempt
    /// and gets a fresh lease number.
    /// </summary>
    ValueTask<LeaseBatch> LeaseAsync(LeaseRequest request, CancellationToken cancellationToken);

    /// <summary>
    /// Applies acks, nacks, extends and rejects. An item whose lease number does not match the current lease, or whose
    /// lease has expired at <paramref name="now"/>, is <see cref="SettleStatus.Stale"/> and changes nothing.
    /// </summary>
    ValueTask<IReadOnlyList<SettleResult>> SettleAsync(string group, IReadOnlyList<SettleItem> items, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Returns leases to pending, due at once (a worker's stream closed). A lease whose attempt has reached
    /// <see cref="LeaseRef"/>'s max attempts is dead-lettered instead. Leases that moved on are ignored.
    /// </summary>
    ValueTask<IReadOnlyList<OutcomeNotice>> ReleaseAsync(string group, IReadOnlyList<ReleaseItem> leases, string reason, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Housekeeping up to <paramref name="now"/>: expired leases go back to pending (or to dead letters past max
    /// attempts), undelivered events past their retention go to dead letters with reason "expired", idempotency keys
    /// past their window are forgotten. Processes at most <paramref name="maxItems"/> of each kind per call.
    /// </summary>
    ValueTask<ExpiryResult> ExpireAsync(DateTimeOffset now, IGroupPolicies policies, int maxItems, CancellationToken cancellationToken);

    /// <summary>The current outcome of an event in each of the given groups (null entry: no outcome yet).</summary>
    ValueTask<IReadOnlyList<OutcomeNotice?>> GetOutcomesAsync(long eventId, IReadOnlyList<string> groups, CancellationToken cancellationToken);

    /// <summary>Backlog, in-flight and dead-letter counts per group.</summary>
    ValueTask<IReadOnlyList<GroupStats>> GetGroupStatsAsync(DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>A page of a group's dead letters with event id greater than <paramref name="afterEventId"/>, oldest first; null when the group does not exist.</summary>
    ValueTask<IReadOnlyList<DeadLetterRecord>?> ListDeadLettersAsync(string group, long afterEventId, int limit, CancellationToken cancellationToken);

    /// <summary>
    /// Moves dead letters (all of the group's when <paramref name="eventIds"/> is null) back to pending with the
    /// attempt count reset, due at <paramref name="now"/> and retained until <paramref name="retainUntil"/>.
    /// Returns how many moved; null when the group does not exist.
    /// </summary>
    ValueTask<int?> RedriveAsync(string group, IReadOnlyList<long>? eventIds, DateTimeOffset now, DateTimeOffset retainUntil, CancellationToken cancellationToken);
}
