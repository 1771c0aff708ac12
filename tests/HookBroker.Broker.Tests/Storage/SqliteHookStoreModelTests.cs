using HookBroker.Broker.Storage;
using HookBroker.Broker.Storage.Memory;
using HookBroker.Broker.Storage.Sqlite;

namespace HookBroker.Broker.Tests.Storage;

/// <summary>
/// The SQLite engine against the memory engine as a model: the same random sequence of operations (appends with
/// fan-out, ordering keys, idempotency keys and retention; leases with partial filters; every kind of settlement;
/// releases, housekeeping, redrive, group deletion, and — SQLite only — restarts) must give the same answers.
/// The SQLite engine keeps most deliveries in its log and gives rows only to the exceptions, so this walks the
/// paths between the two: skipped and blocked events, retries of log events, expiry of unscanned events.
/// </summary>
public sealed class SqliteHookStoreModelTests : IAsyncDisposable
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly string[] Labels = ["a.x", "a.y", "b.z"];
    private static readonly string?[] Keys = [null, null, null, "k1", "k2", "k3"];
    private readonly string _root = Path.Combine(Path.GetTempPath(), "hookbroker-tests", $"sqlite-model-{Guid.NewGuid():N}");
    private readonly List<IHookStore> _stores = [];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }

        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Theory(Timeout = 120_000)]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(3, true)]
    [InlineData(4, true)]
    public async Task Random_operations_answer_as_the_memory_engine_does(int seed, bool restarts)
    {
        var run = new ModelRun(this, seed, restarts);
        await run.InitializeAsync();
        for (var step = 0; step < 1500; step++)
        {
            await run.StepAsync(step);
        }

        await run.DrainAsync();
    }

    private async Task<SqliteHookStore> OpenSqliteAsync(string folder, DateTimeOffset now, SqliteStoreOptions? options = null)
    {
        options ??= new SqliteStoreOptions();
        options.DataPath = Path.Combine(_root, folder);
        var store = new SqliteHookStore(options);
        _stores.Add(store);
        await store.InitializeAsync(new NullListener(), now, Ct);
        return store;
    }

    private sealed class ModelRun(SqliteHookStoreModelTests owner, int seed, bool restarts)
    {
        private readonly Random _random = new(seed);
        private readonly MemoryHookStore _model = new();
        private readonly Dictionary<string, TimeSpan> _retention = new(StringComparer.Ordinal)
        {
            ["g1"] = TimeSpan.FromSeconds(400),
            ["g2"] = TimeSpan.FromSeconds(900),
            ["g3"] = TimeSpan.FromSeconds(400),
        };

        private readonly Dictionary<string, List<LeasedEvent>> _held = new(StringComparer.Ordinal) { ["g1"] = [], ["g2"] = [], ["g3"] = [] };
        private readonly Dictionary<string, List<LeasedEvent>> _issued = new(StringComparer.Ordinal) { ["g1"] = [], ["g2"] = [], ["g3"] = [] };
        private readonly HashSet<(string, long)> _outcomeDiffers = [];
        private readonly List<long> _eventIds = [];
        private SqliteHookStore _store = null!;
        private DateTimeOffset _now = T0;
        private int _keys;
        private bool _g3;

        public async Task InitializeAsync()
        {
            await _model.InitializeAsync(new NullListener(), _now, Ct);
            _store = await owner.OpenSqliteAsync("db", _now, Options(seed));
            foreach (var group in new[] { "g1", "g2" })
            {
                await BothAsync(s => s.AddGroupPatternsAsync(group, [">"], _now, Ct).AsTask());
            }
        }

        public async Task StepAsync(int step)
        {
            var roll = _random.Next(100);
            if (step == 300)
            {
                // A group created later sees only what is raised after it.
                await BothAsync(s => s.AddGroupPatternsAsync("g3", [">"], _now, Ct).AsTask());
                _g3 = true;
            }
            else if (roll < 30)
            {
                await AppendAsync();
            }
            else if (roll < 55)
            {
                await LeaseAsync();
            }
            else if (roll < 75)
            {
                await SettleAsync();
            }
            else if (roll < 79)
            {
                await ReleaseAsync();
            }
            else if (roll < 86)
            {
                await ExpireAsync();
            }
            else if (roll < 89)
            {
                await RedriveAsync();
            }
            else if (roll < 90 && step > 700 && _g3)
            {
                // Deleted with its backlog, then created again (a new group under the same name).
                await BothAsync(s => s.DeleteGroupAsync("g3", Ct).AsTask());
                _held["g3"].Clear();
                _issued["g3"].Clear();
                await BothAsync(s => s.AddGroupPatternsAsync("g3", [">"], _now, Ct).AsTask());
            }
            else if (roll < 92 && restarts)
            {
                await RestartAsync();
            }
            else
            {
                await CompareViewsAsync();
            }

            _now = _now.AddSeconds(_random.Next(0, 8));
        }

        public async Task DrainAsync()
        {
            // Everything is acked or dead-lettered in the end, in both.
            _now = _now.AddDays(1);
            await ExpireAsync();
            for (var round = 0; round < 200; round++)
            {
                var any = false;
                foreach (var group in Groups())
                {
                    var batch = await LeaseOnBothAsync(group, new AllLabels(), 50);
                    any |= batch.Count > 0;
                    if (batch.Count > 0)
                    {
                        var items = batch.Select(d => new SettleItem(new LeaseRef(d.EventId, d.LeaseNo), SettleKind.Ack, default, null, 5)).ToList();
                        await CompareAsync(s => s.SettleAsync(group, items, _now, Ct).AsTask(), Describe);
                    }
                }

                if (!any)
                {
                    break;
                }
            }

            await CompareViewsAsync();
            foreach (var stats in await _store.GetGroupStatsAsync(_now, Ct))
            {
                Assert.Equal(0, stats.Backlog);
            }
        }

        private IEnumerable<string> Groups() => _g3 ? ["g1", "g2", "g3"] : ["g1", "g2"];

        private async Task AppendAsync()
        {
            var count = _random.Next(1, 12);
            var events = new List<NewEvent>(count);
            for (var i = 0; i < count; i++)
            {
                var groups = Groups().Where(_ => _random.Next(3) > 0).ToList();
                if (groups.Count == 0)
                {
                    groups.Add("g1");
                }

                if (_random.Next(20) == 0)
                {
                    groups.Add("ghost");
                }

                var key = _random.Next(8) == 0 ? $"idem-{_random.Next(_keys + 1)}" : null;
                _keys += key is null ? 0 : 1;
                events.Add(new NewEvent(
                    Labels[_random.Next(Labels.Length)],
                    new byte[] { (byte)_random.Next(256), (byte)i },
                    Keys[_random.Next(Keys.Length)],
                    key,
                    _now.AddSeconds(100),
                    _random.Next(2) == 0 ? null : "src",
                    _now.AddSeconds(-_random.Next(0, 5)),
                    [.. groups.Select(g => new RoutedGroup(g, _now + (_retention.TryGetValue(g, out var r) ? r : TimeSpan.FromSeconds(400)), _random.Next(30) == 0 ? 40 : long.MaxValue))]));
            }

            var results = await CompareAsync(s => s.AppendAsync(events, _now, Ct).AsTask(), r => string.Join(" | ", r.Select(x => $"{x.Status} {x.EventId} [{string.Join(",", x.Groups.Order(StringComparer.Ordinal))}] {x.FullGroup}")));
            _eventIds.AddRange(results.Where(r => r.Status == AppendStatus.Stored).Select(r => r.EventId));
        }

        private async Task LeaseAsync()
        {
            var group = Pick(Groups().ToList());
            ILabelFilter filter = _random.Next(3) switch
            {
                0 => new PrefixFilter("a."),
                1 => new PrefixFilter("b."),
                _ => new AllLabels(),
            };
            await LeaseOnBothAsync(group, filter, _random.Next(1, 25));
        }

        private async Task<IReadOnlyList<LeasedEvent>> LeaseOnBothAsync(string group, ILabelFilter filter, int max)
        {
            var request = new LeaseRequest(group, "w", filter, max, _now, _now.AddSeconds(_random.Next(5, 60)));
            var batch = await CompareAsync(
                s => s.LeaseAsync(request, Ct).AsTask(),
                b => string.Join(" | ", b.Deliveries.Select(d => $"{d.EventId}#{d.LeaseNo} a{d.Attempt} {d.Label} {d.OrderingKey} {Convert.ToHexString(d.Payload.Span)} {d.Source} {d.RaisedAt:O} {d.LeaseUntil:O}")));
            _held[group].AddRange(batch.Deliveries);
            _issued[group].AddRange(batch.Deliveries);
            return batch.Deliveries;
        }

        private async Task SettleAsync()
        {
            var group = Pick(Groups().ToList());
            var held = _held[group];
            if (held.Count == 0)
            {
                return;
            }

            var items = new List<SettleItem>();
            foreach (var lease in held.Where(_ => _random.Next(3) > 0).ToList())
            {
                var reference = new LeaseRef(lease.EventId, lease.LeaseNo);
                var kind = _random.Next(20) switch
                {
                    < 11 => SettleKind.Ack,
                    < 15 => SettleKind.Nack,
                    < 18 => SettleKind.Extend,
                    _ => SettleKind.Reject,
                };
                var until = kind == SettleKind.Extend ? _now.AddSeconds(_random.Next(1, 90)) : _now.AddSeconds(_random.Next(0, 30));
                items.Add(new SettleItem(reference, kind, until, kind is SettleKind.Nack or SettleKind.Reject ? $"err{_random.Next(5)}" : null, _random.Next(2, 5)));
                if (kind != SettleKind.Extend)
                {
                    held.Remove(lease);
                }
            }

            await CompareAsync(s => s.SettleAsync(group, items, _now, Ct).AsTask(), Describe);
        }

        private async Task ReleaseAsync()
        {
            var group = Pick(Groups().ToList());
            var held = _held[group];
            var items = held.Where(_ => _random.Next(2) == 0).Select(l => new ReleaseItem(new LeaseRef(l.EventId, l.LeaseNo), _random.Next(2, 5))).ToList();
            held.RemoveAll(l => items.Any(i => i.Lease.EventId == l.EventId && i.Lease.LeaseNo == l.LeaseNo));
            await CompareAsync(s => s.ReleaseAsync(group, items, "worker left", _now, Ct).AsTask(), o => Describe(o.OrderBy(x => x.EventId)));
        }

        private async Task ExpireAsync()
        {
            var policies = new FixedPolicies(4);
            var result = await CompareAsync(
                s => s.ExpireAsync(_now, policies, 10_000, Ct).AsTask(),
                r => $"leases [{string.Join(",", r.ExpiredLeases.Select(l => $"{l.Group}:{l.Lease.EventId}#{l.Lease.LeaseNo}").Order(StringComparer.Ordinal))}] "
                    + $"outcomes [{Describe(r.Outcomes.OrderBy(o => o.Group, StringComparer.Ordinal).ThenBy(o => o.EventId))}] retention {r.RetentionExpired} keys {r.KeysForgotten} more {r.More}");
            foreach (var expired in result.ExpiredLeases)
            {
                _held[expired.Group].RemoveAll(l => l.EventId == expired.Lease.EventId && l.LeaseNo == expired.Lease.LeaseNo);
            }
        }

        private async Task RedriveAsync()
        {
            var group = Pick(Groups().ToList());
            var dead = await _model.ListDeadLettersAsync(group, 0, 1000, Ct);
            IReadOnlyList<long>? ids = _random.Next(2) == 0 || dead is null ? null : [.. dead.Where(_ => _random.Next(2) == 0).Select(d => d.EventId)];
            var retainUntil = _now.AddSeconds(_random.Next(30, 400));
            await CompareAsync(s => s.RedriveAsync(group, ids, _now, retainUntil, Ct).AsTask(), n => $"{n}");
        }

        private async Task RestartAsync()
        {
            // SQLite: a real restart, leases returned to pending with their attempt. The model: the same, by
            // releasing them without an error and without a limit on attempts.
            owner._stores.Remove(_store);
            await _store.DisposeAsync();
            _store = await owner.OpenSqliteAsync("db", _now, Options(seed));
            foreach (var (group, issued) in _issued)
            {
                if (issued.Count > 0)
                {
                    // Leases that moved on are ignored; the rest are the ones the SQLite engine just returned.
                    var released = await _model.ReleaseAsync(group, [.. issued.Select(l => new ReleaseItem(new LeaseRef(l.EventId, l.LeaseNo), int.MaxValue))], null!, _now, Ct);
                    foreach (var outcome in released.Where(o => o.Attempt > 1))
                    {
                        // A row keeps its last error through a restart; the model's release clears it.
                        _outcomeDiffers.Add((group, outcome.EventId));
                    }
                }

                issued.Clear();
                _held[group].Clear();
            }

            await CompareViewsAsync();
        }

        private async Task CompareViewsAsync()
        {
            await CompareAsync(
                s => s.GetGroupStatsAsync(_now, Ct).AsTask(),
                stats => string.Join(" | ", stats.OrderBy(x => x.Name, StringComparer.Ordinal).Select(x => $"{x.Name} backlog {x.Backlog} inflight {x.InFlight} dead {x.DeadLetters} oldest {x.OldestUnackedRaisedAt:O}")));
            foreach (var group in Groups())
            {
                await CompareAsync(
                    s => s.ListDeadLettersAsync(group, 0, 10_000, Ct).AsTask(),
                    page => page is null ? "null" : string.Join(" | ", page.Select(d => $"{d.EventId} {d.Label} {Convert.ToHexString(d.Payload.Span)} {d.OrderingKey} {d.Source} {d.RaisedAt:O} a{d.Attempts} {d.LastError} {d.Reason} {d.DeadLetteredAt:O}")));
            }

            if (_eventIds.Count > 0)
            {
                for (var i = 0; i < 5; i++)
                {
                    var eventId = _eventIds[_random.Next(_eventIds.Count)];
                    var groups = Groups().Where(g => !_outcomeDiffers.Contains((g, eventId))).ToList();
                    await CompareAsync(s => s.GetOutcomesAsync(eventId, groups, Ct).AsTask(), o => string.Join(" | ", o.Select(x => x is null ? "none" : $"{x.Kind} a{x.Attempt} {x.Error} {x.WillRetry}")));
                }
            }
        }

        private static string Describe(IEnumerable<OutcomeNotice> outcomes) =>
            string.Join(" | ", outcomes.Select(o => $"{o.Group}:{o.EventId} {o.Kind} a{o.Attempt} {o.Error} {o.WillRetry}"));

        private static string Describe(IReadOnlyList<SettleResult> results) =>
            string.Join(" | ", results.Select(r => $"{r.Status} {(r.Outcome is { } o ? $"{o.Kind} a{o.Attempt} {o.Error} {o.WillRetry}" : "-")}"));

        private string Pick(List<string> items) => items[_random.Next(items.Count)];

        private static SqliteStoreOptions Options(int seed) => new()
        {
            // Even seeds keep only a few of the newest events in memory, so leases read the log from the database, from
            // memory, and across the bound between the two; odd seeds read fresh events from memory.
            LogTailEvents = seed % 2 == 0 ? 6 : 32_768,

            // Small steps, so trimming and moving long leases to rows happen in a short run. (A lease stopping early
            // after passing over many events is a difference by design: it has its own test.)
            MaxLeaseFloorLag = 40,
            TrimEveryEvents = 16,
            MaxTrimRows = 32,
            LaggardDistance = 24,

            // Ids and lease numbers as the model hands them out, also across restarts.
            ReservedIds = 0,
        };

        private async Task BothAsync<T>(Func<IHookStore, Task<T>> operation)
        {
            await operation(_model);
            await operation(_store);
        }

        private async Task<T> CompareAsync<T>(Func<IHookStore, Task<T>> operation, Func<T, string> describe)
        {
            var expected = await operation(_model);
            var actual = await operation(_store);
            Assert.Equal(describe(expected), describe(actual));
            return actual;
        }
    }

    private sealed class NullListener : IHookStoreListener
    {
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

    private sealed class AllLabels : ILabelFilter
    {
        public bool Matches(string label) => true;
    }

    private sealed class PrefixFilter(string prefix) : ILabelFilter
    {
        public bool Matches(string label) => label.StartsWith(prefix, StringComparison.Ordinal);
    }

    private sealed class FixedPolicies(int maxAttempts) : IGroupPolicies
    {
        public int MaxAttempts(string group) => maxAttempts;
    }
}
