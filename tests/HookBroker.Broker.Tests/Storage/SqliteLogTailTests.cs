using HookBroker.Broker.Storage.Sqlite;

namespace HookBroker.Broker.Tests.Storage;

/// <summary>
/// The newest events the SQLite writer keeps in memory for leases: what a covered read gives (the log query's rows), and
/// how the count, the payload blocks and the groups' scans bound what is kept.
/// </summary>
public sealed class SqliteLogTailTests
{
    private static readonly SqliteGroupState G1 = new(1, "g1", [">"], 0);
    private static readonly SqliteGroupState G2 = new(2, "g2", [">"], 0);

    [Fact(Timeout = 10_000)]
    public void Payloads_come_back_exactly_while_blocks_are_recycled_and_the_oldest_events_go_first()
    {
        // Three blocks of 64 KiB: payloads of 20,000 bytes fit three to a block, so at most nine are kept.
        var tail = Filled(capacity: 1000, blocks: 3, events: 100, size: 20_000, (id, count) =>
            Assert.InRange(count, Math.Min(id, 6), 9)); // a new block lets go of the oldest block's three events only

        // The kept events are the newest; everything after the oldest of them is covered, nothing before.
        var oldestKept = 100 - tail.Count + 1;
        Assert.True(tail.Covers(oldestKept - 1));
        Assert.False(tail.Covers(oldestKept - 2));

        var read = new Queue<SqliteCandidate>();
        var last = 0L;
        Assert.Equal(tail.Count, tail.Read(read, G1, oldestKept - 1, 100, ref last));
        Assert.Equal(100, last);
        foreach (var candidate in read)
        {
            Assert.Equal(Payload(candidate.EventId, 20_000), candidate.Payload);
        }
    }

    [Fact(Timeout = 10_000)]
    public void A_read_gives_the_group_s_events_after_its_scan_in_id_order_as_the_log_query_does()
    {
        var tail = new SqliteLogTail(capacity: 100, maxBytes: SqliteLogTail.BlockSize);
        tail.Restart(10);
        tail.Add(11, "a", [1], "k", "web", 111, ",1,2,", 500, "2=900;");
        tail.Add(12, "b", [], null, null, 112, ",2,", 600, null);
        tail.Add(13, "c", [3, 3], null, null, 113, ",1,", 700, null);
        tail.Add(14, "d", [4], null, null, 114, ",1,2,", 800, null);

        var read = new Queue<SqliteCandidate>();
        var last = 0L;
        Assert.Equal(2, tail.Read(read, G2, 10, 2, ref last));
        Assert.Equal(12, last);
        Assert.Equal(
            [new SqliteCandidate(11, 0, "a", [1], "k", "web", 111, 900), new SqliteCandidate(12, 0, "b", [], null, null, 112, 600)],
            read,
            CandidateComparer.Instance);

        read.Clear();
        Assert.Equal(2, tail.Read(read, G1, 11, 10, ref last));
        Assert.Equal([13L, 14L], read.Select(c => c.EventId));
        Assert.Equal([3, 3], read.Peek().Payload);
        Assert.Equal(700, read.Peek().RetainUntil);
    }

    [Fact(Timeout = 10_000)]
    public void Events_every_group_scanned_are_let_go_and_a_payload_too_large_to_keep_ends_the_coverage_before_it()
    {
        var tail = Filled(capacity: 100, blocks: 4, events: 10, size: 100);

        tail.Release(6);
        Assert.Equal(4, tail.Count);
        Assert.True(tail.Covers(6));
        Assert.False(tail.Covers(5));

        // Larger than a block: not kept, and reads before it must query the log.
        tail.Add(11, "big", new byte[SqliteLogTail.BlockSize + 1], null, null, 11, ",1,", 0, null);
        Assert.Equal(0, tail.Count);
        Assert.False(tail.Covers(10));
        Assert.True(tail.Covers(11));
        tail.Add(12, "e", Payload(12, 100), null, null, 12, ",1,", 0, null);
        var read = new Queue<SqliteCandidate>();
        var last = 0L;
        Assert.Equal(1, tail.Read(read, G1, 11, 10, ref last));
        Assert.Equal(Payload(12, 100), read.Single().Payload);

        // A rolled-back transaction: nothing is covered until the state is rebuilt.
        tail.Invalidate();
        Assert.False(tail.Covers(12));
        tail.Add(13, "e", Payload(13, 100), null, null, 13, ",1,", 0, null);
        Assert.Equal(0, tail.Count);
    }

    /// <summary>A tail of <paramref name="blocks"/> blocks holding events 1 to <paramref name="events"/> of g1, each
    /// with a payload of <paramref name="size"/> bytes; <paramref name="added"/> sees the count after each.</summary>
    private static SqliteLogTail Filled(int capacity, int blocks, int events, int size, Action<long, int>? added = null)
    {
        var tail = new SqliteLogTail(capacity, blocks * SqliteLogTail.BlockSize);
        tail.Restart(0);
        for (long id = 1; id <= events; id++)
        {
            tail.Add(id, "e", Payload(id, size), null, null, id, ",1,", 0, null);
            added?.Invoke(id, tail.Count);
        }

        return tail;
    }

    private static byte[] Payload(long id, int length)
    {
        var bytes = new byte[length];
        new Random((int)id).NextBytes(bytes);
        return bytes;
    }

    private sealed class CandidateComparer : IEqualityComparer<SqliteCandidate>
    {
        public static readonly CandidateComparer Instance = new();

        public bool Equals(SqliteCandidate? x, SqliteCandidate? y) =>
            x is not null && y is not null
            && x with { Payload = Array.Empty<byte>() } == y with { Payload = Array.Empty<byte>() }
            && x.Payload.AsSpan().SequenceEqual(y.Payload);

        public int GetHashCode(SqliteCandidate obj) => obj.EventId.GetHashCode();
    }
}
