using System.Buffers.Binary;
using System.Numerics;

namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// A group's marks for one block of 4,096 consecutive event ids (a <c>group_marks</c> row): which events left the log's
/// common path there (<see cref="IsDone"/>) and which were leased at least once (<see cref="IsDelivered"/>).
/// </summary>
internal sealed class SqliteMarkBlock
{
    /// <summary>log2 of the ids per block.</summary>
    public const int Shift = 12;

    /// <summary>Event ids per block.</summary>
    public const int Size = 1 << Shift;

    private const int Words = Size / 64;

    private readonly ulong[] _done = new ulong[Words];
    private readonly ulong[] _delivered = new ulong[Words];

    public SqliteMarkBlock(long number)
    {
        Number = number;
    }

    /// <summary>The block number: event id &gt;&gt; <see cref="Shift"/>.</summary>
    public long Number { get; }

    /// <summary>True when changed since it was last written.</summary>
    public bool Dirty { get; set; }

    /// <summary>The highest event id of the block.</summary>
    public long LastId => ((Number + 1) << Shift) - 1;

    public static long NumberOf(long eventId) => eventId >> Shift;

    public bool IsDone(long eventId) => (_done[Word(eventId)] & Bit(eventId)) != 0;

    public bool IsDelivered(long eventId) => (_delivered[Word(eventId)] & Bit(eventId)) != 0;

    public void SetDone(long eventId)
    {
        _done[Word(eventId)] |= Bit(eventId);
        Dirty = true;
    }

    public void SetDelivered(long eventId)
    {
        _delivered[Word(eventId)] |= Bit(eventId);
        Dirty = true;
    }

    /// <summary>The highest event id with a done bit, or -1.</summary>
    public long LastDone()
    {
        for (var w = Words - 1; w >= 0; w--)
        {
            if (_done[w] != 0)
            {
                return (Number << Shift) + (w * 64) + 63 - BitOperations.LeadingZeroCount(_done[w]);
            }
        }

        return -1;
    }

    /// <summary>The done bitmap as stored: little-endian 64-bit words, bit i of the block = event (Number &lt;&lt; 12) + i.</summary>
    public byte[] DoneBytes() => ToBytes(_done);

    /// <summary>The delivered bitmap as stored.</summary>
    public byte[] DeliveredBytes() => ToBytes(_delivered);

    /// <summary>Restores the bitmaps of a stored row (shorter blobs leave the rest clear).</summary>
    public void Load(ReadOnlySpan<byte> done, ReadOnlySpan<byte> delivered)
    {
        Copy(done, _done);
        Copy(delivered, _delivered);
    }

    private static void Copy(ReadOnlySpan<byte> source, ulong[] target)
    {
        for (var w = 0; w < Words && (w + 1) * 8 <= source.Length; w++)
        {
            target[w] = BinaryPrimitives.ReadUInt64LittleEndian(source[(w * 8)..]);
        }
    }

    private static byte[] ToBytes(ulong[] words)
    {
        var bytes = new byte[Words * 8];
        for (var w = 0; w < Words; w++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(w * 8), words[w]);
        }

        return bytes;
    }

    private static int Word(long eventId) => (int)((eventId & (Size - 1)) >> 6);

    private static ulong Bit(long eventId) => 1UL << (int)(eventId & 63);
}
