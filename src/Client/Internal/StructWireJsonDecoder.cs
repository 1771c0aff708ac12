using System.Buffers;
using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Unicode;
using Google.Protobuf.WellKnownTypes;
using static HookBroker.Client.Internal.StructWireTags;

namespace HookBroker.Client.Internal;

/// <summary>
/// Reads a delivery's args, the serialized <c>google.protobuf.Struct</c>, straight into UTF-8 JSON and parses that into
/// a <see cref="JsonDocument"/> for the hook's binding, without building a <see cref="Struct"/> tree: the mirror image
/// of <see cref="StructWireEncoder"/>. The JSON is exactly what <see cref="ArgsConverter.ToJson"/> writes for the parsed
/// Struct (the same number rules: integral doubles up to 2^53 as integers, other finite doubles as the shortest
/// round-trip form, non-finite ones as null).
/// </summary>
/// <remarks>
/// <para>The fast path reads what Struct serializers write: each map entry a key then a value (either left out when
/// default), each Value one kind.
/// Unknown fields (and known field numbers with another wire type) are skipped, as <c>Struct.Parser</c> skips them.
/// Anything else the protobuf format allows but no serializer writes — a repeated key in one object, a Value with two
/// kinds (the last wins, and nested messages merge), an entry with its fields repeated, reversed or unknown, invalid
/// UTF-8, group fields, nesting past <see cref="MaxFastDepth"/> — and malformed input make it start over with
/// <c>Struct.Parser</c> and <see cref="ArgsConverter"/>, the old path, which gives the same result or throws the same
/// <see cref="Google.Protobuf.InvalidProtocolBufferException"/>.</para>
/// <para>The JSON lives in a buffer rented from <see cref="ArrayPool{T}.Shared"/> and the document's metadata is pooled by
/// System.Text.Json: dispose the result once the hooks have run. Values bound from it are copies.</para>
/// </remarks>
internal static class StructWireJsonDecoder
{
    /// <summary>
    /// Structs and lists nested deeper than this go through the old path: each level is up to three nested protobuf
    /// messages (struct, map entry, value), and the parser refuses nesting past 100 messages.
    /// </summary>
    public const int MaxFastDepth = 30;

    // Keys of one object compared pairwise up to this many, by sorted hashes above.
    private const int PairwiseKeyLimit = 16;

    [ThreadStatic]
    private static Scratch? current;

    /// <summary>The args of <paramref name="serialized"/> (empty: an empty object) as a JSON object.</summary>
    /// <exception cref="Google.Protobuf.InvalidProtocolBufferException">The bytes are not a serialized Struct.</exception>
    /// <exception cref="JsonException">The object nests deeper than a <see cref="JsonDocument"/> reads (64 levels).</exception>
    public static DecodedArgs Decode(ReadOnlySpan<byte> serialized) => TryDecodeFast(serialized) ?? DecodeThroughStruct(serialized);

    /// <summary>The fast path alone: null when <paramref name="serialized"/> needs the old path (see the remarks).</summary>
    internal static DecodedArgs? TryDecodeFast(ReadOnlySpan<byte> serialized)
    {
        var scratch = Rent(serialized.Length);
        try
        {
            return TryWriteStructBody(serialized, scratch, depth: 1) ? scratch.Finish() : null;
        }
        finally
        {
            Return(scratch);
        }
    }

    /// <summary>The old path: <c>Struct.Parser</c>, then <see cref="ArgsConverter"/>'s writer, into the same pooled buffer.</summary>
    internal static DecodedArgs DecodeThroughStruct(ReadOnlySpan<byte> serialized)
    {
        var parsed = Struct.Parser.ParseFrom(serialized);
        var scratch = Rent(serialized.Length);
        try
        {
            ArgsConverter.WriteStruct(scratch.Writer, parsed);
            return scratch.Finish();
        }
        finally
        {
            Return(scratch);
        }
    }

    /// <summary>This thread's scratch, emptied and sized for args of <paramref name="serializedLength"/> bytes.</summary>
    private static Scratch Rent(int serializedLength)
    {
        var scratch = current;
        if (scratch is null || scratch.InUse)
        {
            scratch = new Scratch();
            current = scratch;
        }

        scratch.InUse = true;
        scratch.Begin(serializedLength);
        return scratch;
    }

    private static void Return(Scratch scratch)
    {
        scratch.Abandon();
        scratch.InUse = false;
    }

    /// <summary>The object whose body (its map entries) is <paramref name="body"/>; false when it needs the old path.</summary>
    private static bool TryWriteStructBody(ReadOnlySpan<byte> body, Scratch scratch, int depth)
    {
        var writer = scratch.Writer;
        writer.WriteStartObject();
        var firstKey = scratch.KeyCount;
        var position = 0;
        while (position < body.Length)
        {
            if (!TryReadTag(body, ref position, out var tag))
            {
                return false;
            }

            if (tag != StructFieldsTag)
            {
                if (!TrySkip(body, ref position, tag))
                {
                    return false;
                }

                continue;
            }

            if (!TryReadLength(body, ref position, out var entry))
            {
                return false;
            }

            // The key (tag, length, UTF-8) then the value (tag, length, Value), nothing else; either may be left out when
            // it is the default (an empty key, a value with no kind), as Google.Protobuf writes map entries.
            var entryPosition = 0;
            var key = entry[..0];
            if (entryPosition < entry.Length && entry[entryPosition] == EntryKeyTag)
            {
                entryPosition++;
                if (!TryReadLength(entry, ref entryPosition, out key) || !Utf8.IsValid(key))
                {
                    return false;
                }
            }

            var value = entry[..0];
            if (entryPosition < entry.Length)
            {
                if (entry[entryPosition++] != EntryValueTag || !TryReadLength(entry, ref entryPosition, out value) || entryPosition != entry.Length)
                {
                    return false;
                }
            }

            scratch.AddKey(key);
            writer.WritePropertyName(key);
            if (!TryWriteValue(value, scratch, depth))
            {
                return false;
            }
        }

        writer.WriteEndObject();
        var unique = scratch.KeysAreUnique(firstKey);
        scratch.KeyCount = firstKey;
        return unique;
    }

    /// <summary>The value whose body (a <c>Value</c> message) is <paramref name="body"/>: null when it has no kind.</summary>
    private static bool TryWriteValue(ReadOnlySpan<byte> body, Scratch scratch, int depth)
    {
        var writer = scratch.Writer;
        var kinds = 0;
        var position = 0;
        while (position < body.Length)
        {
            if (!TryReadTag(body, ref position, out var tag))
            {
                return false;
            }

            if (tag is not (NullTag or NumberTag or StringTag or BoolTag or StructTag or ListTag))
            {
                if (!TrySkip(body, ref position, tag))
                {
                    return false;
                }

                continue;
            }

            if (++kinds > 1)
            {
                return false;
            }

            switch (tag)
            {
                case NullTag:
                    if (!TryReadVarint(body, ref position, out _))
                    {
                        return false;
                    }

                    writer.WriteNullValue();
                    break;
                case NumberTag:
                    if (body.Length - position < 8)
                    {
                        return false;
                    }

                    ArgsConverter.WriteNumber(writer, BinaryPrimitives.ReadDoubleLittleEndian(body[position..]));
                    position += 8;
                    break;
                case BoolTag:
                    if (!TryReadVarint(body, ref position, out var flag))
                    {
                        return false;
                    }

                    writer.WriteBooleanValue(flag != 0);
                    break;
                case StringTag:
                    if (!TryReadLength(body, ref position, out var text) || !Utf8.IsValid(text))
                    {
                        return false;
                    }

                    writer.WriteStringValue(text);
                    break;
                case StructTag:
                    if (depth >= MaxFastDepth || !TryReadLength(body, ref position, out var fields) || !TryWriteStructBody(fields, scratch, depth + 1))
                    {
                        return false;
                    }

                    break;
                default:
                    if (depth >= MaxFastDepth || !TryReadLength(body, ref position, out var items) || !TryWriteListBody(items, scratch, depth + 1))
                    {
                        return false;
                    }

                    break;
            }
        }

        if (kinds == 0)
        {
            writer.WriteNullValue();
        }

        return true;
    }

    /// <summary>The array whose body (a <c>ListValue</c> message) is <paramref name="body"/>.</summary>
    private static bool TryWriteListBody(ReadOnlySpan<byte> body, Scratch scratch, int depth)
    {
        scratch.Writer.WriteStartArray();
        var position = 0;
        while (position < body.Length)
        {
            if (!TryReadTag(body, ref position, out var tag))
            {
                return false;
            }

            if (tag != ListValuesTag)
            {
                if (!TrySkip(body, ref position, tag))
                {
                    return false;
                }

                continue;
            }

            if (!TryReadLength(body, ref position, out var item) || !TryWriteValue(item, scratch, depth))
            {
                return false;
            }
        }

        scratch.Writer.WriteEndArray();
        return true;
    }

    private static bool TryReadTag(ReadOnlySpan<byte> data, ref int position, out ulong tag) =>
        TryReadVarint(data, ref position, out tag) && tag >> 3 != 0 && tag <= uint.MaxValue;

    /// <summary>Skips an unknown field's value; false for group fields (wire types 3, 4) and invalid wire types.</summary>
    private static bool TrySkip(ReadOnlySpan<byte> data, ref int position, ulong tag)
    {
        switch (tag & 7)
        {
            case 0:
                return TryReadVarint(data, ref position, out _);
            case 1:
                position += 8;
                return position <= data.Length;
            case 2:
                return TryReadLength(data, ref position, out _);
            case 5:
                position += 4;
                return position <= data.Length;
            default:
                return false;
        }
    }

    private static bool TryReadLength(ReadOnlySpan<byte> data, scoped ref int position, out ReadOnlySpan<byte> value)
    {
        value = default;
        if (!TryReadVarint(data, ref position, out var length) || length > (ulong)(data.Length - position))
        {
            return false;
        }

        value = data.Slice(position, (int)length);
        position += (int)length;
        return true;
    }

    private static bool TryReadVarint(ReadOnlySpan<byte> data, ref int position, out ulong value)
    {
        value = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (position >= data.Length)
            {
                return false;
            }

            var b = data[position++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>A thread's JSON writer, its output buffer and the keys of the objects being written.</summary>
    private sealed class Scratch
    {
        private readonly PooledBufferWriter output = new();
        private int[] keyStarts = new int[32];
        private int[] keyLengths = new int[32];
        private byte[] keyBytes = new byte[1024];
        private int keyBytesUsed;

        public Scratch() => Writer = new Utf8JsonWriter(output, new JsonWriterOptions { SkipValidation = true });

        public Utf8JsonWriter Writer { get; }

        public bool InUse { get; set; }

        public int KeyCount { get; set; }

        /// <summary>Starts an empty output, sized for args of <paramref name="serializedLength"/> bytes.</summary>
        public void Begin(int serializedLength)
        {
            output.Start(Math.Max(256, serializedLength + (serializedLength / 2)));
            Writer.Reset(output);
            KeyCount = 0;
            keyBytesUsed = 0;
        }

        /// <summary>Parses what was written; the document owns the rented buffer from now on.</summary>
        public DecodedArgs Finish()
        {
            Writer.Flush();
            var (buffer, length) = output.Detach();
            try
            {
                return new DecodedArgs(JsonDocument.Parse(buffer.AsMemory(0, length)), buffer);
            }
            catch
            {
                ArrayPool<byte>.Shared.Return(buffer);
                throw;
            }
        }

        /// <summary>Returns the buffer when <see cref="Finish"/> did not take it (an exception).</summary>
        public void Abandon()
        {
            output.Release();
            if (keyBytes.Length > 64 * 1024)
            {
                keyBytes = new byte[1024]; // large args' keys are not kept for the thread's lifetime
            }
        }

        public void AddKey(ReadOnlySpan<byte> key)
        {
            if (KeyCount == keyStarts.Length)
            {
                Array.Resize(ref keyStarts, keyStarts.Length * 2);
                Array.Resize(ref keyLengths, keyLengths.Length * 2);
            }

            if (keyBytes.Length - keyBytesUsed < key.Length)
            {
                Array.Resize(ref keyBytes, Math.Max(keyBytes.Length * 2, keyBytesUsed + key.Length));
            }

            key.CopyTo(keyBytes.AsSpan(keyBytesUsed));
            keyStarts[KeyCount] = keyBytesUsed;
            keyLengths[KeyCount] = key.Length;
            keyBytesUsed += key.Length;
            KeyCount++;
        }

        /// <summary>Whether the keys added since <paramref name="first"/> (one object's) are distinct; forgets their bytes.</summary>
        public bool KeysAreUnique(int first)
        {
            var count = KeyCount - first;
            var unique = count <= PairwiseKeyLimit ? PairwiseUnique(first) : HashesUnique(first, count);
            if (count > 0)
            {
                keyBytesUsed = keyStarts[first];
            }

            return unique;
        }

        private ReadOnlySpan<byte> Key(int index) => keyBytes.AsSpan(keyStarts[index], keyLengths[index]);

        private bool PairwiseUnique(int first)
        {
            for (var i = first; i < KeyCount; i++)
            {
                for (var j = i + 1; j < KeyCount; j++)
                {
                    if (keyLengths[i] == keyLengths[j] && Key(i).SequenceEqual(Key(j)))
                    {
                        return false;
                    }
                }
            }

            return true;
        }

        /// <summary>Sorted hashes, no two equal (equal hashes count as a repeat: the old path then decides).</summary>
        private bool HashesUnique(int first, int count)
        {
            var hashes = ArrayPool<int>.Shared.Rent(count);
            try
            {
                for (var i = 0; i < count; i++)
                {
                    var hash = default(HashCode);
                    hash.AddBytes(Key(first + i));
                    hashes[i] = hash.ToHashCode();
                }

                Array.Sort(hashes, 0, count);
                for (var i = 1; i < count; i++)
                {
                    if (hashes[i] == hashes[i - 1])
                    {
                        return false;
                    }
                }

                return true;
            }
            finally
            {
                ArrayPool<int>.Shared.Return(hashes);
            }
        }
    }

    /// <summary>An output buffer rented from the shared pool, handed over whole to the document that reads it.</summary>
    private sealed class PooledBufferWriter : IBufferWriter<byte>
    {
        private byte[]? buffer;
        private int written;

        public void Start(int capacity)
        {
            Release();
            buffer = ArrayPool<byte>.Shared.Rent(capacity);
            written = 0;
        }

        public (byte[] Buffer, int Length) Detach()
        {
            var result = (buffer!, written);
            buffer = null;
            written = 0;
            return result;
        }

        public void Release()
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
                buffer = null;
            }
        }

        public void Advance(int count) => written += count;

        public Memory<byte> GetMemory(int sizeHint = 0)
        {
            Ensure(sizeHint);
            return buffer.AsMemory(written);
        }

        public Span<byte> GetSpan(int sizeHint = 0)
        {
            Ensure(sizeHint);
            return buffer.AsSpan(written);
        }

        private void Ensure(int sizeHint)
        {
            var needed = Math.Max(sizeHint, 1);
            if (buffer!.Length - written >= needed)
            {
                return;
            }

            var grown = ArrayPool<byte>.Shared.Rent(Math.Max(buffer.Length * 2, written + needed));
            buffer.AsSpan(0, written).CopyTo(grown);
            ArrayPool<byte>.Shared.Return(buffer);
            buffer = grown;
        }
    }
}
