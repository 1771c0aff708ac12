using System.Collections.Concurrent;
using System.Collections.Immutable;
using HookBroker.Broker.Storage;

namespace HookBroker.Broker.Core;

/// <summary>
/// Knows every group's patterns and routes a label to the groups whose patterns match it. Routes are cached per label
/// and the cache is dropped when groups change; watchers of interest are woken on each change.
/// </summary>
public sealed class GroupRouter
{
    private readonly Lock _gate = new();
    // Groups and the route cache built from them travel together and are replaced on each change, so a route computed
    // from old groups can only land in the old cache. The groups are an immutable map, so one group's change costs
    // O(log n), not a copy of every group (10,000 groups subscribing one by one copied ~1 GB of tables before).
    private Table _table = new(ImmutableDictionary.Create<string, PatternSet>(StringComparer.Ordinal));
    private TaskCompletionSource _changed = NewSignal();
    private long _version;

    /// <summary>Increases with each change.</summary>
    public long Version => Interlocked.Read(ref _version);

    /// <summary>Completes at the next change.</summary>
    public Task Changed
    {
        get
        {
            lock (_gate)
            {
                return _changed.Task;
            }
        }
    }

    /// <summary>The groups whose patterns match <paramref name="label"/> (empty: unrouted).</summary>
    public string[] Route(string label)
    {
        var table = Volatile.Read(ref _table);
        var routes = table.Routes;
        if (routes.TryGetValue(label, out var cached))
        {
            return cached;
        }

        var groups = table.Groups;
        var matched = groups.Where(g => g.Value.Matches(label)).Select(g => g.Key).Order(StringComparer.Ordinal).ToArray();
        // Bound the cache: labels are client-chosen, so a flood of distinct labels must not grow it forever.
        if (routes.Count >= 100_000)
        {
            routes.Clear();
        }

        routes[label] = matched;
        return matched;
    }

    /// <summary>Every pattern of every group, deduplicated and sorted.</summary>
    public IReadOnlyList<string> AllPatterns() =>
        Volatile.Read(ref _table).Groups.Values.SelectMany(p => p.Patterns).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();

    /// <summary>
    /// Replaces the whole view with groups read from storage, unless the view changed since <paramref name="readAtVersion"/>
    /// (a local change may be newer than what was read): then false, and the caller reads again.
    /// </summary>
    public bool TryReset(IReadOnlyList<GroupRecord> groups, long readAtVersion)
    {
        var current = Volatile.Read(ref _table).Groups;
        // Most reloads follow this node's own change, already applied: storage then says what the view holds. Keeping
        // the view is right whatever changed since the read, as nothing in it is older than what was read.
        if (Holds(current, groups))
        {
            return true;
        }

        // Unchanged groups keep their pattern sets.
        var next = ImmutableDictionary.CreateBuilder<string, PatternSet>(StringComparer.Ordinal);
        foreach (var group in groups)
        {
            next[group.Name] = current.TryGetValue(group.Name, out var set) && set.HasExactly(group.Patterns) ? set : new PatternSet(group.Patterns);
        }

        lock (_gate)
        {
            if (Version != readAtVersion)
            {
                return false;
            }

            PublishLocked(next.ToImmutable());
            return true;
        }
    }

    /// <summary>Applies one group's new state at once (so a raise right after a subscribe routes to it).</summary>
    public void Apply(GroupRecord group)
    {
        lock (_gate)
        {
            var groups = _table.Groups;
            if (groups.TryGetValue(group.Name, out var set) && set.HasExactly(group.Patterns))
            {
                // Nothing changed (say, a worker of a known group came back): keep the view, its route cache and version.
                return;
            }

            PublishLocked(groups.SetItem(group.Name, new PatternSet(group.Patterns)));
        }
    }

    /// <summary>
    /// Applies what a subscribe stored (the group's patterns with the worker's added), at once. Subscribes only add
    /// patterns, so the view keeps the patterns it has beside the record's: the record of one subscribe may arrive after
    /// that of another worker's, which holds more, and must not take that worker's patterns away.
    /// </summary>
    public void Include(GroupRecord group)
    {
        lock (_gate)
        {
            var groups = _table.Groups;
            if (groups.TryGetValue(group.Name, out var set))
            {
                if (set.HasAll(group.Patterns))
                {
                    // Nothing new (say, a worker of a known group came back): keep the view, its route cache and version.
                    return;
                }

                PublishLocked(groups.SetItem(group.Name, new PatternSet(set.Patterns.Union(group.Patterns, StringComparer.Ordinal))));
                return;
            }

            PublishLocked(groups.SetItem(group.Name, new PatternSet(group.Patterns)));
        }
    }

    /// <summary>Forgets a deleted group at once.</summary>
    public void Remove(string group)
    {
        lock (_gate)
        {
            PublishLocked(_table.Groups.Remove(group));
        }
    }

    private static bool Holds(ImmutableDictionary<string, PatternSet> current, IReadOnlyList<GroupRecord> groups)
    {
        if (current.Count != groups.Count)
        {
            return false;
        }

        foreach (var group in groups)
        {
            if (!current.TryGetValue(group.Name, out var set) || !set.HasExactly(group.Patterns))
            {
                return false;
            }
        }

        return true;
    }

    private void PublishLocked(ImmutableDictionary<string, PatternSet> next)
    {
        Volatile.Write(ref _table, new Table(next));
        Interlocked.Increment(ref _version);
        var changed = _changed;
        _changed = NewSignal();
        changed.TrySetResult();
    }

    private sealed class Table(ImmutableDictionary<string, PatternSet> groups)
    {
        public ImmutableDictionary<string, PatternSet> Groups { get; } = groups;

        public ConcurrentDictionary<string, string[]> Routes { get; } = new(StringComparer.Ordinal);
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
