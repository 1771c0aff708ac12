namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// The newest events of the log, kept as the writer appended them, so that a lease taking fresh events (a worker keeping
/// up with its group) reads them from memory instead of reading back the rows it has just written: no query, no copy
/// of the payload. Each is let go once every group has scanned past it; bounded by a count and by payload bytes, the
/// oldest going first.
/// </summary>
/// <remarks>
/// It holds every event appended after <see cref="Covers"/>'s bound (events are appended in id order and the bound
/// moves past each one evicted), so a read it covers gives exactly the rows the log query gives. The rows are the same
/// but for trimming, which only deletes events every group has finished, so no lease reads them. A rolled-back
/// transaction empties it: its rows are gone, and until the state is rebuilt it covers nothing.
/// </remarks>
internal sealed class SqliteLogTail
{
    private readonly SqliteTailEvent?[] _events;
    private readonly long _maxBytes;
    private int _first;
    private int _count;
    private long _bytes;
    private long _coveredAfter = long.MaxValue;

    /// <summary>Keeps up to <paramref name="capacity"/> events and <paramref name="maxBytes"/> bytes of payload (0: off).</summary>
    public SqliteLogTail(int capacity, long maxBytes)
    {
        _events = new SqliteTailEvent?[capacity];
        _maxBytes = maxBytes;
    }

    /// <summary>Reads served from memory so far (for tests and diagnostics).</summary>
    public long Reads { get; private set; }

    /// <summary>Events kept now.</summary>
    public int Count => _count;

    /// <summary>True when every event of the log with an id above <paramref name="after"/> is here.</summary>
    public bool Covers(long after) => after >= _coveredAfter;

    /// <summary>Starts over empty: every event appended from now on has an id above <paramref name="lastId"/>.</summary>
    public void Restart(long lastId)
    {
        Clear();
        _coveredAfter = _events.Length == 0 ? long.MaxValue : lastId;
    }

    /// <summary>Forgets everything and covers nothing until <see cref="Restart"/>.</summary>
    public void Invalidate()
    {
        Clear();
        _coveredAfter = long.MaxValue;
    }

    /// <summary>Keeps the event just appended (its id above every one kept), evicting the oldest as the bounds require.</summary>
    public void Add(SqliteTailEvent appended)
    {
        if (_coveredAfter == long.MaxValue)
        {
            return;
        }

        while (_count > 0 && (_count == _events.Length || _bytes + appended.Payload.Length > _maxBytes))
        {
            EvictOldest();
        }

        if (appended.Payload.Length > _maxBytes)
        {
            // Larger than the whole tail: reads past it go to the log.
            _coveredAfter = appended.EventId;
            return;
        }

        _events[(_first + _count) % _events.Length] = appended;
        _count++;
        _bytes += appended.Payload.Length;
    }

    /// <summary>
    /// Lets go of the events up to <paramref name="lastId"/>, which no group needs from the log any more (each has scanned
    /// past them, or has nothing left to scan): kept no longer than needed, they are short-lived objects for the GC.
    /// </summary>
    public void Release(long lastId)
    {
        while (_count > 0 && _events[_first]!.EventId <= lastId)
        {
            EvictOldest();
        }
    }

    /// <summary>
    /// Reads as the log query does (<see cref="Covers"/> must hold): up to <paramref name="chunk"/> events after
    /// <paramref name="after"/> routed to <paramref name="group"/>, oldest first. Returns how many; <paramref name="lastId"/>
    /// is the last one's id.
    /// </summary>
    public int Read(Queue<SqliteCandidate> target, SqliteGroupState group, long after, int chunk, ref long lastId)
    {
        Reads++;
        var count = 0;
        for (var i = FirstAfter(after); i < _count && count < chunk; i++)
        {
            var tailEvent = _events[(_first + i) % _events.Length]!;
            if (!tailEvent.Routes.Contains(group.Token, StringComparison.Ordinal))
            {
                continue;
            }

            count++;
            lastId = tailEvent.EventId;
            target.Enqueue(new SqliteCandidate(
                EventId: tailEvent.EventId,
                Attempt: 0,
                Label: tailEvent.Label,
                Payload: tailEvent.Payload,
                OrderingKey: tailEvent.OrderingKey,
                Source: tailEvent.Source,
                RaisedAt: tailEvent.RaisedAt,
                RetainUntil: SqliteRoutes.RetainUntil(group.Id, tailEvent.RetainUntil, tailEvent.RetainOverrides)));
        }

        return count;
    }

    /// <summary>The position of the first event kept with an id above <paramref name="after"/> (ids ascend).</summary>
    private int FirstAfter(long after)
    {
        int low = 0, high = _count;
        while (low < high)
        {
            var middle = (low + high) >>> 1;
            if (_events[(_first + middle) % _events.Length]!.EventId <= after)
            {
                low = middle + 1;
            }
            else
            {
                high = middle;
            }
        }

        return low;
    }

    private void EvictOldest()
    {
        var oldest = _events[_first]!;
        _events[_first] = null;
        _first = (_first + 1) % _events.Length;
        _count--;
        _bytes -= oldest.Payload.Length;
        _coveredAfter = oldest.EventId;
    }

    private void Clear()
    {
        Array.Clear(_events);
        _first = 0;
        _count = 0;
        _bytes = 0;
    }
}
