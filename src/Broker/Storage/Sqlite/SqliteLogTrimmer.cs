using System.Globalization;
using System.Text;
using Microsoft.Data.Sqlite;

namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// Deletes the log behind the groups, by id range, in bounded steps the writer runs between batches.
/// </summary>
/// <remarks>
/// <para>An event row can go once every group it went to has its floor at or past it (a group without unfinished
/// fresh events counts as past everything). Two passes:</para>
/// <list type="bullet">
/// <item>behind the slowest group: every row up to the lowest floor;</item>
/// <item>around the laggards (a group whose workers are offline would otherwise keep every group's events): the up to
/// <see cref="MaxLaggards"/> slowest groups whose floor is more than <see cref="SqliteStoreOptions.LaggardDistance"/>
/// ids behind the newest event. Rows up to the floor of the slowest other group go, except those routed to a
/// laggard, which stay until the first pass reaches them. When the laggards change, this pass starts over from the
/// lowest floor, so rows kept for a group that caught up go too.</item>
/// </list>
/// </remarks>
internal sealed class SqliteLogTrimmer : IDisposable
{
    /// <summary>Slow groups whose events the second pass steps around.</summary>
    public const int MaxLaggards = 8;

    private readonly SqliteConnection _db;
    private readonly int _maxRows;
    private readonly long _laggardDistance;
    private readonly SqliteStatement _deleteRange;
    private readonly SqliteStatement?[] _deleteAround = new SqliteStatement?[MaxLaggards + 1];
    private long _deletedThrough;
    private long _sweptThrough;
    private long[] _laggards = [];

    public SqliteLogTrimmer(SqliteConnection db, int maxRowsPerStep, long laggardDistance)
    {
        _db = db;
        _maxRows = maxRowsPerStep;
        _laggardDistance = laggardDistance;
        _deleteRange = new SqliteStatement(db, "DELETE FROM events WHERE id > $from AND id <= $to", "$from", "$to");
    }

    /// <summary>Resets the positions from storage (at open and after a failed batch).</summary>
    public void Reset()
    {
        using var command = _db.CreateCommand();
        command.CommandText = "SELECT min(id) FROM events";
        var first = command.ExecuteScalar();
        _deletedThrough = first is long id ? id - 1 : 0;
        _sweptThrough = _deletedThrough;
        _laggards = [];
    }

    /// <summary>
    /// One bounded step. <paramref name="head"/> is the newest event id; <paramref name="groups"/> are every group.
    /// Returns true when there is more to delete right away.
    /// </summary>
    public bool Step(IEnumerable<SqliteGroupState> groups, long head)
    {
        var open = new List<SqliteGroupState>();
        foreach (var group in groups)
        {
            if (group.FreshUnfinished > 0)
            {
                open.Add(group);
            }
        }

        open.Sort(static (a, b) => a.Floor.CompareTo(b.Floor));
        var lowest = open.Count > 0 ? open[0].Floor : head;
        var more = false;
        if (lowest > _deletedThrough)
        {
            var to = Math.Min(lowest, _deletedThrough + _maxRows);
            _deleteRange.Execute(_deletedThrough, to);
            _deletedThrough = to;
            more = to < lowest;
        }

        // Around the laggards: up to the floor of the slowest group that is not one of them.
        var laggards = 0;
        while (laggards < Math.Min(open.Count, MaxLaggards) && head - open[laggards].Floor > _laggardDistance)
        {
            laggards++;
        }

        var ids = open.Take(laggards).Select(g => g.Id).Order().ToArray();
        if (!ids.AsSpan().SequenceEqual(_laggards))
        {
            _laggards = ids;
            _sweptThrough = _deletedThrough;
        }

        var until = open.Count > laggards ? open[laggards].Floor : head;
        var from = Math.Max(_sweptThrough, _deletedThrough);
        if (laggards > 0 && until > from)
        {
            var to = Math.Min(until, from + _maxRows);
            var values = new object?[2 + laggards];
            values[0] = from;
            values[1] = to;
            for (var i = 0; i < laggards; i++)
            {
                values[2 + i] = open[i].Token;
            }

            Around(laggards).Execute(values);
            _sweptThrough = to;
            more |= to < until;
        }

        return more;
    }

    public void Dispose()
    {
        _deleteRange.Dispose();
        foreach (var statement in _deleteAround)
        {
            statement?.Dispose();
        }
    }

    private SqliteStatement Around(int laggards)
    {
        if (_deleteAround[laggards] is { } prepared)
        {
            return prepared;
        }

        var sql = new StringBuilder("DELETE FROM events WHERE id > $from AND id <= $to");
        var names = new string[2 + laggards];
        names[0] = "$from";
        names[1] = "$to";
        for (var i = 0; i < laggards; i++)
        {
            names[2 + i] = string.Create(CultureInfo.InvariantCulture, $"$t{i}");
            sql.Append(CultureInfo.InvariantCulture, $" AND instr(routes, {names[2 + i]}) = 0");
        }

        return _deleteAround[laggards] = new SqliteStatement(_db, sql.ToString(), names);
    }
}
