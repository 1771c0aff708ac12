namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>A group as the writer keeps it in memory: its id, patterns and backlog count (loaded at open).</summary>
internal sealed class SqliteGroupState(long id, string name, List<string> patterns, long backlog)
{
    public long Id { get; } = id;

    public string Name { get; } = name;

    public List<string> Patterns { get; } = patterns;

    /// <summary>Deliveries pending or leased (dead letters excluded): what the backlog limit is checked against.</summary>
    public long Backlog { get; set; } = backlog;

    public GroupRecord ToRecord() => new(Name, [.. Patterns]);
}

/// <summary>An immutable view of the groups, published by the writer after each commit for the read side.</summary>
internal sealed class SqliteGroupSnapshot
{
    public static readonly SqliteGroupSnapshot Empty = new([]);

    public SqliteGroupSnapshot(IReadOnlyList<(long Id, GroupRecord Record)> groups)
    {
        Groups = groups;
        var byName = new Dictionary<string, long>(groups.Count, StringComparer.Ordinal);
        foreach (var (id, record) in groups)
        {
            byName[record.Name] = id;
        }

        _ids = byName;
    }

    private readonly Dictionary<string, long> _ids;

    public IReadOnlyList<(long Id, GroupRecord Record)> Groups { get; }

    public long? IdOf(string group) => _ids.TryGetValue(group, out var id) ? id : null;
}
