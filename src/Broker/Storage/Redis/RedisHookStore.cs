using System.Collections.Concurrent;
using System.IO.Hashing;
using System.Text;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace HookBroker.Broker.Storage.Redis;

/// <summary>
/// The scale-out engine: every broker node sharing one Redis (or Redis Cluster) keeps no state of its own. Groups,
/// events, leases, attempts, delayed retries, ordering, dead letters, idempotency keys and outcomes live in Redis.
/// </summary>
/// <remarks>
/// <para>Layout: events are spread over a fixed number of partitions (the ordering key's, else the idempotency key's,
/// else the label's), each partition one hash slot (<c>{prefix:n}</c>) holding a stream of its events (trimmed behind
/// the oldest event any group still needs) and, per group, a backlog, ready sets per label, a delayed set, per ordering
/// key sets and a hash per delivery. Every operation on a partition is one Lua script, so it is atomic whatever the
/// number of nodes. Event ids are <c>sequence × partitions + partition</c>: ordered within a partition.</para>
/// <para>Times come from the caller as absolute instants (microseconds in Redis); Redis's own clocks and idle times are
/// never used. Scripts publish what they changed on one channel inside the same atomic step; every node's engine turns
/// other nodes' notices into listener calls (wake-ups, wait-mode outcomes, group reloads, expired leases).</para>
/// <para>Broker nodes heartbeat through housekeeping; the leases held through a node that shut down or went silent
/// past <see cref="RedisStoreOptions.NodeTimeout"/> return to pending at once (restart recovery, attempt kept).</para>
/// </remarks>
public sealed partial class RedisHookStore : IHookStore
{
    private const int DeleteChunk = 5000;
    private const int RedriveChunk = 1000;
    private const int DefaultMaxAttempts = 5;
    private const string Gone = "gone";

    private readonly RedisStoreOptions _options;
    private readonly ILogger<RedisHookStore> _logger;
    private readonly RedisKeys _keys;
    private readonly string _node = Guid.NewGuid().ToString("N")[..16];
    private readonly ConcurrentDictionary<string, RedisPartitionHints> _hints = new(StringComparer.Ordinal);
    private ConnectionMultiplexer? _redis;
    private IDatabase? _db;
    private ChannelMessageQueue? _notices;
    private IHookStoreListener _listener = NoListener.Instance;
    private int _partitions = 1;
    private volatile bool _disposed;

    /// <summary>Creates the engine; <see cref="InitializeAsync"/> connects.</summary>
    public RedisHookStore(RedisStoreOptions options, ILogger<RedisHookStore> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        options.Validate();
        _options = options;
        _logger = logger;
        _keys = new RedisKeys(options.KeyPrefix);
    }

    private IDatabase Db => _db ?? throw new InvalidOperationException("The Redis engine is not initialized.");

    /// <inheritdoc />
    public async ValueTask InitializeAsync(IHookStoreListener listener, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(listener);
        ThrowIfDisposed();
        var configuration = ConfigurationOptions.Parse(_options.Configuration);
        configuration.AbortOnConnectFail = false;
        configuration.ClientName ??= "hookbroker-" + _node;
        _redis = await ConnectionMultiplexer.ConnectAsync(configuration).WaitAsync(cancellationToken);
        _db = _redis.GetDatabase();
        await Run(() => Db.PingAsync(), cancellationToken);

        var isCluster = _redis.GetServers().Any(s => s.ServerType == ServerType.Cluster);
        _partitions = await ResolvePartitionsAsync(isCluster, cancellationToken);
        _listener = listener;

        _notices = await _redis.GetSubscriber().SubscribeAsync(_keys.Channel).WaitAsync(cancellationToken);
        _notices.OnMessage(OnNotice);
        _redis.ConnectionRestored += OnConnectionRestored;

        // Groups created by a node that died half-way reach every partition.
        var groups = await Run(() => Db.HashKeysAsync(_keys.Catalog), cancellationToken);
        if (groups.Length > 0)
        {
            await Task.WhenAll(Enumerable.Range(0, _partitions).Select(p => Db.SetAddAsync(_keys.PartitionGroups(p), groups))).WaitAsync(cancellationToken);
        }

        await Run(() => Db.HashSetAsync(_keys.Nodes, _node, RedisValues.Time(now)), cancellationToken);
        await RecoverGoneNodesAsync(now, cancellationToken);
        RedisLog.Started(_logger, _node, _options.Configuration, _partitions, isCluster);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<GroupRecord>> ListGroupsAsync(CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        var entries = await Run(() => Db.HashGetAllAsync(_keys.Catalog), cancellationToken);
        return [.. entries.Select(e => new GroupRecord(e.Name.ToString(), SplitPatterns(e.Value))).OrderBy(g => g.Name, StringComparer.Ordinal)];
    }

    /// <inheritdoc />
    public async ValueTask<GroupRecord> AddGroupPatternsAsync(string group, IReadOnlyCollection<string> patterns, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(group);
        ArgumentNullException.ThrowIfNull(patterns);
        ThrowIfDisposed();

        // Every partition knows the group before the catalog announces it, so no event routed to it is skipped.
        await Task.WhenAll(Enumerable.Range(0, _partitions).Select(p => Db.SetAddAsync(_keys.PartitionGroups(p), group))).WaitAsync(cancellationToken);
        RedisValue[] args = [_keys.Channel.ToString(), _node, group, .. patterns.Select(p => (RedisValue)p)];
        var result = RedisResults.Strings(await Run(() => Db.ScriptEvaluateAsync(RedisScripts.AddPatterns, [_keys.Catalog], args), cancellationToken));
        if (result[0] == "1")
        {
            Hints(group).MarkAll();
            _listener.OnGroupsChanged();
        }

        return new GroupRecord(group, result[1..]);
    }

    /// <inheritdoc />
    public async ValueTask<GroupRecord?> RemoveGroupPatternsAsync(string group, IReadOnlyCollection<string> patterns, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(patterns);
        ThrowIfDisposed();
        RedisValue[] args = [_keys.Channel.ToString(), _node, group, .. patterns.Select(p => (RedisValue)p)];
        var result = RedisResults.Strings(await Run(() => Db.ScriptEvaluateAsync(RedisScripts.RemovePatterns, [_keys.Catalog], args), cancellationToken));
        if (result.Length == 0)
        {
            return null;
        }

        if (result[0] == "1")
        {
            _listener.OnGroupsChanged();
        }

        return new GroupRecord(group, result[1..]);
    }

    /// <inheritdoc />
    public async ValueTask<bool> DeleteGroupAsync(string group, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        ThrowIfDisposed();
        if (!await Run(() => Db.HashDeleteAsync(_keys.Catalog, group), cancellationToken))
        {
            return false;
        }

        await Run(() => Db.PublishAsync(_keys.Channel, NoticeJson(RedisNotice.GroupsChanged)), cancellationToken);
        _listener.OnGroupsChanged();
        await Task.WhenAll(Enumerable.Range(0, _partitions).Select(async p =>
        {
            while ((int)await Db.ScriptEvaluateAsync(RedisScripts.DeleteGroup, [_keys.Partition(p)], [group, DeleteChunk]) == 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
            }
        })).WaitAsync(cancellationToken);
        _hints.TryRemove(group, out _);
        return true;
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<AppendResult>> AppendAsync(IReadOnlyList<NewEvent> events, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(events);
        ThrowIfDisposed();
        var results = new AppendResult[events.Count];
        var byPartition = new Dictionary<int, List<int>>();
        for (var i = 0; i < events.Count; i++)
        {
            var p = PartitionOf(events[i]);
            if (!byPartition.TryGetValue(p, out var indexes))
            {
                byPartition[p] = indexes = [];
            }

            indexes.Add(i);
        }

        var available = new HashSet<string>(StringComparer.Ordinal);
        await Run(
            () => Task.WhenAll(byPartition.Select(async pair =>
            {
                var (p, indexes) = (pair.Key, pair.Value);
                var args = new List<RedisValue>(6 + (indexes.Count * 11))
                {
                    RedisValues.Time(now), _keys.Channel.ToString(), _node, _partitions, p, indexes.Count,
                };
                foreach (var i in indexes)
                {
                    var e = events[i];
                    args.Add(e.Label);
                    args.Add(e.Payload.ToArray());
                    args.Add(RedisValues.Optional(e.OrderingKey));
                    args.Add(RedisValues.Optional(e.IdempotencyKey));
                    args.Add(RedisValues.Time(e.IdempotencyUntil));
                    args.Add(RedisValues.Optional(e.Source));
                    args.Add(RedisValues.Time(e.RaisedAt));
                    args.Add(e.Groups.Count);
                    foreach (var routed in e.Groups)
                    {
                        args.Add(routed.Group);
                        args.Add(RedisValues.Time(routed.RetainUntil));
                        args.Add(RedisValues.Number(BacklogShare(routed.MaxBacklog)));
                    }
                }

                var items = RedisResults.Items(await Db.ScriptEvaluateAsync(RedisScripts.Append, [_keys.Partition(p)], [.. args]));
                for (var k = 0; k < indexes.Count; k++)
                {
                    var item = RedisResults.Strings(items[k]);
                    results[indexes[k]] = item[0] switch
                    {
                        "S" => new AppendResult(AppendStatus.Stored, RedisValues.ToLong(item[1]), item[2..]),
                        "U" => new AppendResult(AppendStatus.Duplicate, RedisValues.ToLong(item[1]), item[2..]),
                        _ => AppendResult.Full(item[1]),
                    };
                    if (item[0] == "S")
                    {
                        lock (available)
                        {
                            foreach (var group in item[2..])
                            {
                                Hints(group).Mark(p);
                                available.Add(group);
                            }
                        }
                    }
                }
            })),
            cancellationToken);

        if (available.Count > 0)
        {
            _listener.OnEventsAvailable([.. available]);
        }

        return results;
    }

    /// <inheritdoc />
    public async ValueTask<LeaseBatch> LeaseAsync(LeaseRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentOutOfRangeException.ThrowIfLessThan(request.Max, 1);
        ThrowIfDisposed();
        var hints = Hints(request.Group);
        var decisions = RedisLabelDecisions.For(request.Filter);
        var leased = new List<LeasedEvent>();
        DateTimeOffset? nextDueAt = null;
        foreach (var (p, version) in hints.Candidates())
        {
            var remaining = request.Max - leased.Count;
            if (remaining <= 0)
            {
                break;
            }

            var result = await LeasePartitionAsync(p, request, remaining, decisions, cancellationToken);
            if (result is null)
            {
                // The group is gone (deleted meanwhile): hand out what earlier partitions leased, ask no further.
                break;
            }

            leased.AddRange(result.Value.Leased);
            if (result.Value.NextDueAt is { } due && (nextDueAt is null || due < nextDueAt))
            {
                nextDueAt = due;
            }

            if (!result.Value.MoreReady && result.Value.NextDueAt is null)
            {
                hints.ClearIfUnchanged(p, version);
            }
        }

        return leased.Count == 0 && nextDueAt is null ? LeaseBatch.Empty : new LeaseBatch(leased, nextDueAt);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<SettleResult>> SettleAsync(string group, IReadOnlyList<SettleItem> items, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(items);
        ThrowIfDisposed();
        var results = new SettleResult[items.Count];
        await Run(
            () => Task.WhenAll(ByPartition(items, item => item.Lease.EventId).Select(async pair =>
            {
                var (p, indexes) = (pair.Key, pair.Value);
                var args = new List<RedisValue>(5 + (indexes.Count * 6)) { group, RedisValues.Time(now), _keys.Channel.ToString(), _node, indexes.Count };
                foreach (var i in indexes)
                {
                    var item = items[i];
                    args.Add(RedisValues.Number(item.Lease.EventId));
                    args.Add(RedisValues.Number(item.Lease.LeaseNo));
                    args.Add(item.Kind switch
                    {
                        SettleKind.Ack => "A",
                        SettleKind.Nack => "N",
                        SettleKind.Extend => "E",
                        SettleKind.Reject => "R",
                        _ => throw new ArgumentOutOfRangeException(nameof(items), item.Kind, "Unknown settle kind."),
                    });
                    args.Add(RedisValues.Time(item.Until));
                    args.Add(RedisValues.Optional(item.Error));
                    args.Add(item.MaxAttempts);
                }

                var answers = RedisResults.Items(await Db.ScriptEvaluateAsync(RedisScripts.Settle, [_keys.Partition(p)], [.. args]));
                for (var k = 0; k < indexes.Count; k++)
                {
                    var answer = RedisResults.Strings(answers[k]);
                    if (answer[0] == "S")
                    {
                        results[indexes[k]] = SettleResult.Stale;
                        continue;
                    }

                    var outcome = answer.Length > 1 ? RedisResults.Outcome(answer, 1) : null;
                    results[indexes[k]] = new SettleResult(SettleStatus.Confirmed, outcome);
                    // A retry, or the next event of an ordering key after an ack, may now be deliverable here.
                    Hints(group).Mark(p);
                }
            })),
            cancellationToken);

        var outcomes = results.Select(r => r.Outcome).OfType<OutcomeNotice>().ToList();
        if (outcomes.Count > 0)
        {
            _listener.OnOutcomes(outcomes);
        }

        return results;
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<OutcomeNotice>> ReleaseAsync(string group, IReadOnlyList<ReleaseItem> leases, string reason, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(leases);
        ThrowIfDisposed();
        var outcomes = new List<OutcomeNotice>();
        await Run(
            () => Task.WhenAll(ByPartition(leases, item => item.Lease.EventId).Select(async pair =>
            {
                var (p, indexes) = (pair.Key, pair.Value);
                var args = new List<RedisValue>(6 + (indexes.Count * 3)) { group, RedisValues.Time(now), _keys.Channel.ToString(), _node, reason, indexes.Count };
                foreach (var i in indexes)
                {
                    args.Add(RedisValues.Number(leases[i].Lease.EventId));
                    args.Add(RedisValues.Number(leases[i].Lease.LeaseNo));
                    args.Add(leases[i].MaxAttempts);
                }

                var found = RedisResults.Outcomes(RedisResults.Strings(await Db.ScriptEvaluateAsync(RedisScripts.Release, [_keys.Partition(p)], [.. args])));
                if (found.Count > 0)
                {
                    Hints(group).Mark(p);
                    lock (outcomes)
                    {
                        outcomes.AddRange(found);
                    }
                }
            })),
            cancellationToken);

        if (outcomes.Count > 0)
        {
            _listener.OnOutcomes(outcomes);
        }

        return outcomes;
    }

    /// <inheritdoc />
    public async ValueTask<ExpiryResult> ExpireAsync(DateTimeOffset now, IGroupPolicies policies, int maxItems, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(policies);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxItems, 1);
        ThrowIfDisposed();
        await Run(() => Db.HashSetAsync(_keys.Nodes, _node, RedisValues.Time(now)), cancellationToken);
        await RecoverGoneNodesAsync(now, cancellationToken);

        var groups = await Run(() => Db.HashKeysAsync(_keys.Catalog), cancellationToken);
        var args = new List<RedisValue> { RedisValues.Time(now), _keys.Channel.ToString(), _node, (maxItems + _partitions - 1) / _partitions, DefaultMaxAttempts, groups.Length };
        foreach (var group in groups)
        {
            args.Add(group);
            args.Add(policies.MaxAttempts(group.ToString()));
        }

        var expired = new List<ExpiredLease>();
        var outcomes = new List<OutcomeNotice>();
        int retention = 0, keys = 0;
        var more = false;
        RedisValue[] argv = [.. args];
        var answers = await Run(
            () => Task.WhenAll(Enumerable.Range(0, _partitions).Select(p => Db.ScriptEvaluateAsync(RedisScripts.Expire, [_keys.Partition(p)], argv))),
            cancellationToken);
        for (var p = 0; p < answers.Length; p++)
        {
            var parts = RedisResults.Items(answers[p]);
            var flat = RedisResults.Strings(parts[0]);
            for (var i = 0; i + 2 < flat.Length; i += 3)
            {
                expired.Add(new ExpiredLease(flat[i], new LeaseRef(RedisValues.ToLong(flat[i + 1]), RedisValues.ToLong(flat[i + 2]))));
            }

            // A failure makes a retry due in this partition; a dead letter may free its ordering key for the next event
            // (the script indexes it, and its notice reaches the other nodes only): either way, look here again.
            var found = RedisResults.Outcomes(RedisResults.Strings(parts[1]));
            foreach (var outcome in found)
            {
                Hints(outcome.Group).Mark(p);
            }

            outcomes.AddRange(found);
            retention += (int)parts[2];
            keys += (int)parts[3];
            more |= parts[4].ToString() == "1";
        }

        if (outcomes.Count > 0)
        {
            _listener.OnOutcomes(outcomes);
            _listener.OnEventsAvailable([.. outcomes.Select(o => o.Group).Distinct(StringComparer.Ordinal)]);
        }

        return new ExpiryResult(expired, outcomes, retention, keys, more);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<OutcomeNotice?>> GetOutcomesAsync(long eventId, IReadOnlyList<string> groups, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ThrowIfDisposed();
        if (groups.Count == 0)
        {
            return [];
        }

        RedisValue[] args = [RedisValues.Number(eventId), .. groups.Select(g => (RedisValue)g)];
        var answers = RedisResults.Items(await Run(() => Db.ScriptEvaluateAsync(RedisScripts.Outcomes, [_keys.Partition(PartitionOf(eventId))], args), cancellationToken));
        return [.. answers.Select(a => RedisResults.Strings(a) is { Length: 6 } flat ? RedisResults.Outcome(flat, 0) : null)];
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<GroupStats>> GetGroupStatsAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        var groups = await ListGroupsAsync(cancellationToken);
        if (groups.Count == 0)
        {
            return [];
        }

        RedisValue[] names = [.. groups.Select(g => (RedisValue)g.Name)];
        var answers = await Run(
            () => Task.WhenAll(Enumerable.Range(0, _partitions).Select(p => Db.ScriptEvaluateAsync(RedisScripts.Stats, [_keys.Partition(p)], names))),
            cancellationToken);
        var stats = new List<GroupStats>(groups.Count);
        for (var i = 0; i < groups.Count; i++)
        {
            long backlog = 0, inFlight = 0, deadLetters = 0;
            DateTimeOffset? oldest = null;
            foreach (var answer in answers)
            {
                var row = RedisResults.Strings(RedisResults.Items(answer)[i]);
                backlog += RedisValues.ToLong(row[0]);
                inFlight += RedisValues.ToLong(row[1]);
                deadLetters += RedisValues.ToLong(row[2]);
                if (row[3].Length > 0 && RedisValues.ToTime(row[3]) is var raised && (oldest is null || raised < oldest))
                {
                    oldest = raised;
                }
            }

            stats.Add(new GroupStats(groups[i].Name, groups[i].Patterns, backlog, inFlight, deadLetters, oldest));
        }

        return stats;
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<DeadLetterRecord>?> ListDeadLettersAsync(string group, long afterEventId, int limit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        ThrowIfDisposed();
        if (!await Run(() => Db.HashExistsAsync(_keys.Catalog, group), cancellationToken))
        {
            return null;
        }

        if (limit == 0)
        {
            return [];
        }

        RedisValue[] args = [group, RedisValues.Number(afterEventId), limit];
        var answers = await Run(
            () => Task.WhenAll(Enumerable.Range(0, _partitions).Select(p => Db.ScriptEvaluateAsync(RedisScripts.DeadLetters, [_keys.Partition(p)], args))),
            cancellationToken);
        var records = new List<DeadLetterRecord>();
        foreach (var answer in answers)
        {
            var items = RedisResults.Items(answer);
            for (var i = 0; i + 9 < items.Length; i += 10)
            {
                records.Add(new DeadLetterRecord(
                    RedisValues.ToLong(items[i].ToString()),
                    items[i + 1].ToString(),
                    ((byte[]?)items[i + 2]) ?? [],
                    RedisValues.FromOptional(items[i + 3].ToString()),
                    RedisValues.FromOptional(items[i + 4].ToString()),
                    RedisValues.ToTime(items[i + 5].ToString()),
                    RedisValues.ToInt(items[i + 6].ToString()),
                    RedisValues.FromOptional(items[i + 7].ToString()),
                    items[i + 8].ToString(),
                    RedisValues.ToTime(items[i + 9].ToString())));
            }
        }

        return [.. records.OrderBy(r => r.EventId).Take(limit)];
    }

    /// <inheritdoc />
    public async ValueTask<int?> RedriveAsync(string group, IReadOnlyList<long>? eventIds, DateTimeOffset now, DateTimeOffset retainUntil, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        ThrowIfDisposed();
        if (!await Run(() => Db.HashExistsAsync(_keys.Catalog, group), cancellationToken))
        {
            return null;
        }

        var moved = 0;
        var common = new RedisValue[] { group, RedisValues.Time(now), RedisValues.Time(retainUntil), _keys.Channel.ToString(), _node };
        if (eventIds is null)
        {
            for (var p = 0; p < _partitions; p++)
            {
                var partition = p;
                bool more;
                do
                {
                    var answer = RedisResults.Items(await Run(() => Db.ScriptEvaluateAsync(RedisScripts.Redrive, [_keys.Partition(partition)], [.. common, "1", RedriveChunk]), cancellationToken));
                    moved += (int)answer[0];
                    more = answer[1].ToString() == "1";
                }
                while (more);
            }
        }
        else
        {
            foreach (var (p, indexes) in ByPartition(eventIds, id => id))
            {
                RedisValue[] args = [.. common, "0", indexes.Count, .. indexes.Select(i => (RedisValue)RedisValues.Number(eventIds[i]))];
                var answer = RedisResults.Items(await Run(() => Db.ScriptEvaluateAsync(RedisScripts.Redrive, [_keys.Partition(p)], args), cancellationToken));
                moved += (int)answer[0];
            }
        }

        if (moved > 0)
        {
            Hints(group).MarkAll();
            _listener.OnEventsAvailable([group]);
        }

        return moved;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _listener = NoListener.Instance;
        if (_redis is null)
        {
            return;
        }

        _redis.ConnectionRestored -= OnConnectionRestored;
        try
        {
            if (_notices is not null)
            {
                await _notices.UnsubscribeAsync();
            }

            // Whatever this node still leases goes back to pending at the next node's housekeeping or start.
            await _db!.HashSetAsync(_keys.Nodes, _node, Gone);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            RedisLog.LeaveFailed(_logger, _node, ex);
        }

        await _redis.CloseAsync();
        await _redis.DisposeAsync();
    }

    /// <summary>The partition an event goes to: its ordering key's, else its idempotency key's, else its label's.</summary>
    internal int PartitionOf(NewEvent e)
    {
        if (_partitions == 1)
        {
            return 0;
        }

        var key = e.OrderingKey ?? e.IdempotencyKey ?? e.Label;
        return (int)(XxHash32.HashToUInt32(Encoding.UTF8.GetBytes(key)) % (uint)_partitions);
    }

    private int PartitionOf(long eventId) => (int)(eventId % _partitions);

    private long BacklogShare(long maxBacklog) =>
        maxBacklog == long.MaxValue || _partitions == 1 ? maxBacklog : (maxBacklog + _partitions - 1) / _partitions;

    private Dictionary<int, List<int>> ByPartition<T>(IReadOnlyList<T> items, Func<T, long> eventId)
    {
        var map = new Dictionary<int, List<int>>();
        for (var i = 0; i < items.Count; i++)
        {
            var p = PartitionOf(eventId(items[i]));
            if (!map.TryGetValue(p, out var list))
            {
                map[p] = list = [];
            }

            list.Add(i);
        }

        return map;
    }

    private RedisPartitionHints Hints(string group) => _hints.GetOrAdd(group, _ => new RedisPartitionHints(_partitions));

    private async Task<(List<LeasedEvent> Leased, DateTimeOffset? NextDueAt, bool MoreReady)?> LeasePartitionAsync(
        int partition, LeaseRequest request, int max, RedisLabelDecisions decisions, CancellationToken cancellationToken)
    {
        for (var round = 0; ; round++)
        {
            var (accepted, rejected) = decisions.Snapshot();
            var args = new List<RedisValue>(9 + accepted.Length + rejected.Length)
            {
                request.Group, RedisValues.Time(request.Now), RedisValues.Time(request.LeaseUntil), request.WorkerId, _node, max, accepted.Length,
            };
            args.AddRange(accepted.Select(l => (RedisValue)l));
            args.Add(rejected.Length);
            args.AddRange(rejected.Select(l => (RedisValue)l));
            var answer = RedisResults.Items(await Run(() => Db.ScriptEvaluateAsync(RedisScripts.Lease, [_keys.Partition(partition)], [.. args]), cancellationToken));
            switch (answer[0].ToString())
            {
                case "N":
                    return null;
                case "U" when round < 3:
                    decisions.Decide(request.Filter, answer.Skip(1).Select(a => a.ToString()));
                    continue;
                case "U":
                    throw new InvalidOperationException("The worker's filter did not settle on the partition's labels.");
                default:
                    break;
            }

            var leased = new List<LeasedEvent>();
            for (var i = 3; i + 7 < answer.Length; i += 8)
            {
                leased.Add(new LeasedEvent(
                    RedisValues.ToLong(answer[i].ToString()),
                    RedisValues.ToLong(answer[i + 1].ToString()),
                    RedisValues.ToInt(answer[i + 2].ToString()),
                    answer[i + 3].ToString(),
                    ((byte[]?)answer[i + 4]) ?? [],
                    RedisValues.FromOptional(answer[i + 5].ToString()),
                    RedisValues.FromOptional(answer[i + 6].ToString()),
                    RedisValues.ToTime(answer[i + 7].ToString()),
                    request.LeaseUntil));
            }

            var next = answer[1].ToString();
            return (leased, next.Length == 0 ? null : RedisValues.ToTime(next), answer[2].ToString() == "1");
        }
    }

    private async Task<int> ResolvePartitionsAsync(bool isCluster, CancellationToken cancellationToken)
    {
        var wanted = _options.Partitions ?? (isCluster ? 16 : 1);
        await Run(() => Db.HashSetAsync(_keys.Meta, "partitions", wanted, When.NotExists), cancellationToken);
        var stored = (int)await Run(() => Db.HashGetAsync(_keys.Meta, "partitions"), cancellationToken);
        if (_options.Partitions is { } configured && configured != stored)
        {
            throw new InvalidOperationException(
                $"Redis.Partitions is {configured} but the keyspace '{_options.KeyPrefix}' was created with {stored} partitions; " +
                $"the count cannot change once events exist. Set Redis.Partitions to {stored} (or leave it unset), or use a new Redis.KeyPrefix.");
        }

        return stored;
    }

    /// <summary>Returns the leases of nodes that shut down or went silent past the node timeout to pending.</summary>
    private async Task RecoverGoneNodesAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var deadline = now - _options.NodeTimeout;
        var gone = new List<RedisValue>();
        foreach (var entry in await Run(() => Db.HashGetAllAsync(_keys.Nodes), cancellationToken))
        {
            if (entry.Name == _node)
            {
                continue;
            }

            if (entry.Value == Gone || RedisValues.ToTime(entry.Value) < deadline)
            {
                gone.Add(entry.Name);
            }
        }

        if (gone.Count == 0)
        {
            return;
        }

        RedisValue[] args = [RedisValues.Time(now), _keys.Channel.ToString(), _node, gone.Count, .. gone];
        var returned = await Run(
            () => Task.WhenAll(Enumerable.Range(0, _partitions).Select(p => Db.ScriptEvaluateAsync(RedisScripts.Recover, [_keys.Partition(p)], args))),
            cancellationToken);
        foreach (var hints in _hints.Values)
        {
            hints.MarkAll();
        }

        await Run(() => Db.HashDeleteAsync(_keys.Nodes, [.. gone]), cancellationToken);
        if (_logger.IsEnabled(LogLevel.Warning))
        {
            RedisLog.NodesGone(_logger, string.Join(", ", gone), returned.Sum(r => (int)r));
        }
        _listener.OnEventsAvailable([.. _hints.Keys]);
    }

    private void OnNotice(ChannelMessage message)
    {
        // "<node> <json>": a node skips its own notices without parsing them.
        var text = message.Message.ToString();
        if (_disposed || text.StartsWith(_node + " ", StringComparison.Ordinal))
        {
            return;
        }

        var notice = RedisNotice.Parse(text[(text.IndexOf(' ', StringComparison.Ordinal) + 1)..]);
        if (notice is null || notice.Node == _node)
        {
            return;
        }

        try
        {
            switch (notice.Kind)
            {
                case RedisNotice.EventsAvailable:
                    foreach (var group in notice.Groups)
                    {
                        if (notice.Partition is { } p && p < _partitions)
                        {
                            Hints(group).Mark(p);
                        }
                        else
                        {
                            Hints(group).MarkAll();
                        }
                    }

                    _listener.OnEventsAvailable(notice.Groups);
                    break;
                case RedisNotice.OutcomesReached:
                    _listener.OnOutcomes(notice.Outcomes);
                    break;
                case RedisNotice.GroupsChanged:
                    _listener.OnGroupsChanged();
                    break;
                case RedisNotice.LeasesExpired:
                    _listener.OnLeasesExpired(notice.ExpiredLeases);
                    break;
                default:
                    break;
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            RedisLog.NoticeFailed(_logger, ex);
        }
    }

    /// <summary>Notices published while the connection was down are lost: every group may have work, groups may have changed.</summary>
    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
    {
        if (_disposed)
        {
            return;
        }

        RedisLog.Reconnected(_logger, e.EndPoint);
        foreach (var hints in _hints.Values)
        {
            hints.MarkAll();
        }

        _listener.OnGroupsChanged();
        _listener.OnEventsAvailable([.. _hints.Keys]);
    }

    private string NoticeJson(char kind) => $"{_node} {{\"n\":\"{_node}\",\"t\":\"{kind}\"}}";

    private static async Task<T> Run<T>(Func<Task<T>> operation, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            return await operation().WaitAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is RedisConnectionException or RedisTimeoutException || (ex is RedisServerException server && IsTransient(server)))
        {
            throw new StorageUnavailableException($"Redis is unavailable ({ex.Message})", ex);
        }
    }

    private static async Task Run(Func<Task> operation, CancellationToken cancellationToken) =>
        await Run(
            async () =>
            {
                await operation();
                return true;
            },
            cancellationToken);

    private static bool IsTransient(RedisServerException ex) =>
        ex.Message.StartsWith("CLUSTERDOWN", StringComparison.Ordinal)
        || ex.Message.StartsWith("TRYAGAIN", StringComparison.Ordinal)
        || ex.Message.StartsWith("LOADING", StringComparison.Ordinal)
        || ex.Message.StartsWith("MASTERDOWN", StringComparison.Ordinal)
        || ex.Message.StartsWith("READONLY", StringComparison.Ordinal);

    private static string[] SplitPatterns(RedisValue value) =>
        value.IsNullOrEmpty ? [] : value.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    private sealed class NoListener : IHookStoreListener
    {
        public static readonly NoListener Instance = new();

        public void OnEventsAvailable(IReadOnlyCollection<string> groups)
        {
        }

        public void OnOutcomes(IReadOnlyList<OutcomeNotice> outcomes)
        {
        }

        public void OnGroupsChanged()
        {
        }
    }
}
