namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// The newest events of the log, kept as the writer appended them, so that a lease taking fresh events (a worker keeping
/// up with its group) reads them from memory instead of querying the rows it has just written. Each is let go once every
/// group has scanned past it; bounded by a count and by payload bytes, the oldest going first.
/// </summary>
/// <remarks>
/// <para>It holds every event appended after <see cref="Covers"/>'s bound (events are appended in id order and the
/// bound moves past each one let go), so a read it covers gives exactly the rows the log query gives. The rows are the
/// same but for trimming, which only deletes events every group has finished, so no lease reads them. A rolled-back
/// transaction empties it: its rows are gone, and until the state is rebuilt it covers nothing.</para>
/// <para>Nothing here is allocated per event: events sit in a ring of slots and their payloads are copied into blocks
/// of 64 KiB, recycled once their events are let go. So what is kept for a while is never a young object the GC would
/// have to promote (holding the appended arrays themselves grew the heap by 50 MB in the fan-out benchmark). A read
/// copies the payload out, as reading the row did.</para>
/// </remarks>
internal sealed class SqliteLogTail
{
    /// <summary>Payloads larger than this are not kept (a read past such an event queries the log).</summary>
    public const int BlockSize = 64 * 1024;

    private readonly Slot[] _slots;
    private readonly int _maxBlocks;
    private readonly Queue<byte[]> _blocks = new();
    private readonly Stack<byte[]> _spare = new();
    private byte[]? _newest;
    private int _filled;
    private int _first;
    private int _count;
    private long _coveredAfter = long.MaxValue;

    /// <summary>Keeps up to <paramref name="capacity"/> events and <paramref name="maxBytes"/> bytes of payload (either 0: off).</summary>
    public SqliteLogTail(int capacity, long maxBytes)
    {
        _maxBlocks = (int)Math.Min(maxBytes / BlockSize, 1 << 16);
        _slots = new Slot[_maxBlocks == 0 ? 0 : capacity];
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
        _coveredAfter = _slots.Length == 0 ? long.MaxValue : lastId;
    }

    /// <summary>Forgets everything and covers nothing until <see cref="Restart"/>.</summary>
    public void Invalidate()
    {
        Clear();
        _coveredAfter = long.MaxValue;
    }

    /// <summary>
    /// Keeps the event just appended (its id above every one kept), letting the oldest go as the bounds require; the
    /// payload is copied. <paramref name="label"/> should be a string the writer keeps anyway (see <see cref="SqliteLabelCache"/>).
    /// </summary>
    public void Add(long eventId, string label, ReadOnlySpan<byte> payload, string? orderingKey, string? source, long raisedAt, string routes, long retainUntil, string? retainOverrides)
    {
        if (_coveredAfter == long.MaxValue)
        {
            return;
        }

        if (payload.Length > BlockSize)
        {
            // Not kept: reads reaching it query the log, and the events before it are of no use any more.
            Clear();
            _coveredAfter = eventId;
            return;
        }

        if (_count == _slots.Length)
        {
            LetGoOldest();
        }

        if (_newest is null || _filled + payload.Length > BlockSize)
        {
            while (_blocks.Count == _maxBlocks && _count > 0)
            {
                LetGoOldest();
            }

            _newest = _spare.Count > 0 ? _spare.Pop() : new byte[BlockSize];
            _blocks.Enqueue(_newest);
            _filled = 0;
        }

        payload.CopyTo(_newest.AsSpan(_filled));
        _slots[(_first + _count) % _slots.Length] = new Slot(eventId, label, _newest, _filled, payload.Length, orderingKey, source, raisedAt, routes, retainUntil, retainOverrides);
        _filled += payload.Length;
        _count++;
    }

    /// <summary>
    /// Lets go of the events up to <paramref name="lastId"/>, which no group needs from the log any more (each has scanned
    /// past them, or has nothing left to scan).
    /// </summary>
    public void Release(long lastId)
    {
        while (_count > 0 && _slots[_first].EventId <= lastId)
        {
            LetGoOldest();
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
            ref readonly var slot = ref _slots[(_first + i) % _slots.Length];
            if (!slot.Routes.Contains(group.Token, StringComparison.Ordinal))
            {
                continue;
            }

            count++;
            lastId = slot.EventId;
            target.Enqueue(new SqliteCandidate(
                EventId: slot.EventId,
                Attempt: 0,
                Label: slot.Label,
                Payload: slot.Block.AsSpan(slot.Offset, slot.Length).ToArray(),
                OrderingKey: slot.OrderingKey,
                Source: slot.Source,
                RaisedAt: slot.RaisedAt,
                RetainUntil: SqliteRoutes.RetainUntil(group.Id, slot.RetainUntil, slot.RetainOverrides)));
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
            if (_slots[(_first + middle) % _slots.Length].EventId <= after)
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

    private void LetGoOldest()
    {
        _coveredAfter = _slots[_first].EventId;
        _slots[_first] = default;
        _first = (_first + 1) % _slots.Length;
        _count--;
        if (_count == 0)
        {
            RecycleBlocks();
            return;
        }

        // Blocks fill in event order: those before the oldest kept event's block hold nothing kept.
        var oldestBlock = _slots[_first].Block;
        while (!ReferenceEquals(_blocks.Peek(), oldestBlock))
        {
            _spare.Push(_blocks.Dequeue());
        }
    }

    private void Clear()
    {
        Array.Clear(_slots);
        _first = 0;
        _count = 0;
        RecycleBlocks();
    }

    private void RecycleBlocks()
    {
        while (_blocks.Count > 0)
        {
            _spare.Push(_blocks.Dequeue());
        }

        _newest = null;
        _filled = 0;
    }

    /// <summary>One event kept: the log row's columns, its payload at <see cref="Offset"/> in <see cref="Block"/>.</summary>
    private readonly record struct Slot(
        long EventId,
        string Label,
        byte[] Block,
        int Offset,
        int Length,
        string? OrderingKey,
        string? Source,
        long RaisedAt,
        string Routes,
        long RetainUntil,
        string? RetainOverrides);
}
