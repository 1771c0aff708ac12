namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// A group's mark blocks above its floor (see <see cref="SqliteMarkBlock"/>), in memory as in <c>group_marks</c>. Blocks
/// wholly at or below the floor are dropped; the writer persists the dirty ones at commit.
/// </summary>
internal sealed class SqliteGroupMarks
{
    private readonly SortedDictionary<long, SqliteMarkBlock> _blocks = [];
    private SqliteMarkBlock? _last;

    public int Count => _blocks.Count;

    public IEnumerable<SqliteMarkBlock> Blocks => _blocks.Values;

    public bool IsDone(long eventId) => Find(eventId) is { } block && block.IsDone(eventId);

    public bool IsDelivered(long eventId) => Find(eventId) is { } block && block.IsDelivered(eventId);

    public void SetDone(long eventId) => Get(eventId).SetDone(eventId);

    public void SetDelivered(long eventId) => Get(eventId).SetDelivered(eventId);

    /// <summary>Adds a block read from storage.</summary>
    public SqliteMarkBlock Add(long number)
    {
        var block = new SqliteMarkBlock(number);
        _blocks[number] = block;
        return block;
    }

    /// <summary>Drops the blocks whose every id is at or below <paramref name="floor"/>; true when one was dropped.</summary>
    public bool DropThrough(long floor)
    {
        var dropped = false;
        while (_blocks.Count > 0)
        {
            var first = _blocks.First().Value;
            if (first.LastId > floor)
            {
                break;
            }

            _blocks.Remove(first.Number);
            dropped = true;
        }

        if (dropped && _last is not null && _last.LastId <= floor)
        {
            _last = null;
        }

        return dropped;
    }

    public void Clear()
    {
        _blocks.Clear();
        _last = null;
    }

    private SqliteMarkBlock? Find(long eventId)
    {
        var number = SqliteMarkBlock.NumberOf(eventId);
        if (_last is not null && _last.Number == number)
        {
            return _last;
        }

        if (_blocks.TryGetValue(number, out var block))
        {
            _last = block;
        }

        return block;
    }

    private SqliteMarkBlock Get(long eventId)
    {
        if (Find(eventId) is { } block)
        {
            return block;
        }

        block = Add(SqliteMarkBlock.NumberOf(eventId));
        _last = block;
        return block;
    }
}
