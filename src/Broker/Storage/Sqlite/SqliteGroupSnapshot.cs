namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>An immutable view of the groups, published by the writer after each commit for the read side.</summary>
internal sealed class SqliteGroupSnapshot
{
    public static readonly SqliteGroupSnapshot Empty = new([]);

    private readonly Dictionary<string, long> _ids;

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

    public IReadOnlyList<(long Id, GroupRecord Record)> Groups { get; }

    public long? IdOf(string group) => _ids.TryGetValue(group, out var id) ? id : null;
}
