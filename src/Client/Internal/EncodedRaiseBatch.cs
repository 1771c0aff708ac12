using Grpc.Core;

namespace HookBroker.Client.Internal;

/// <summary>
/// One <c>RaiseStream</c> request message: encoded raises (<see cref="EncodedRaise"/>), each tagged with its sequence
/// number, serialized as the <c>RaiseStreamRequest { repeated RaiseItem items = 1; }</c> of the public proto, with
/// <c>RaiseItem { uint64 sequence = 1; RaiseRequest raise = 2; }</c>.
/// </summary>
/// <param name="capacity">How many raises it will hold.</param>
internal sealed class EncodedRaiseBatch(int capacity)
{
    private const byte ItemsTag = (1 << 3) | 2;
    private const byte SequenceTag = (1 << 3) | 0;
    private const byte RaiseTag = (2 << 3) | 2;

    private readonly List<(ulong Sequence, byte[] Raise)> items = new(capacity);

    /// <summary>How many raises it holds.</summary>
    public int Count => items.Count;

    /// <summary>Adds a raise with its sequence number.</summary>
    public void Add(ulong sequence, byte[] raise) => items.Add((sequence, raise));

    /// <summary>The serialized message, written into the call's buffer (no copy of the whole message is made).</summary>
    public void WriteTo(SerializationContext context)
    {
        var size = 0;
        foreach (var (sequence, raise) in items)
        {
            var item = ItemSize(sequence, raise.Length);
            size += 1 + VarintSize((ulong)item) + item;
        }

        context.SetPayloadLength(size);
        var writer = context.GetBufferWriter();
        foreach (var (sequence, raise) in items)
        {
            var item = ItemSize(sequence, raise.Length);
            var length = 1 + VarintSize((ulong)item) + item;
            var span = writer.GetSpan(length);
            var at = 0;
            span[at++] = ItemsTag;
            at += WriteVarint(span[at..], (ulong)item);
            if (sequence != 0)
            {
                span[at++] = SequenceTag;
                at += WriteVarint(span[at..], sequence);
            }

            span[at++] = RaiseTag;
            at += WriteVarint(span[at..], (ulong)raise.Length);
            raise.CopyTo(span[at..]);
            writer.Advance(length);
        }

        context.Complete();
    }

    private static int ItemSize(ulong sequence, int raise) =>
        (sequence == 0 ? 0 : 1 + VarintSize(sequence)) + 1 + VarintSize((ulong)raise) + raise;

    private static int VarintSize(ulong value)
    {
        var size = 1;
        while (value >= 0x80)
        {
            value >>= 7;
            size++;
        }

        return size;
    }

    private static int WriteVarint(Span<byte> span, ulong value)
    {
        var at = 0;
        while (value >= 0x80)
        {
            span[at++] = (byte)(value | 0x80);
            value >>= 7;
        }

        span[at++] = (byte)value;
        return at;
    }
}
