using System.Buffers.Binary;
using System.Text.Json;
using static HookBroker.Client.Internal.StructWireTags;

namespace HookBroker.Client.Internal;

/// <summary>
/// Encodes a JSON object (UTF-8) straight into the protobuf wire format of a <c>google.protobuf.Struct</c>, without
/// building a <c>Struct</c> tree: the bytes a raise's <c>args</c> field carries. Map entries are written in the JSON's
/// property order, as <c>Struct</c> serializes its fields, so the result is what serializing the equivalent
/// <c>Struct</c> gives. Numbers follow <see cref="ArgsConverter"/>'s rules: integers beyond 2^53 (which a double cannot
/// hold) travel as strings with every digit.
/// </summary>
/// <remarks>
/// Nested messages are length-prefixed, and a length is known only once the message is written: each one reserves one
/// byte for its length and, in the rare case it ends up 128 bytes or longer, moves its content up by the extra bytes.
/// Nesting depth is bounded by the JSON reader (64 levels by default, as for the serializer).
/// </remarks>
internal static class StructWireEncoder
{
    private const long MaxSafeInteger = 9_007_199_254_740_992; // 2^53

    [ThreadStatic]
    private static byte[]? scratch;

    /// <summary>
    /// The serialized Struct of <paramref name="utf8Json"/>, which must hold one JSON object (the caller checked its
    /// first token), nested at most <paramref name="maxDepth"/> levels (0: the reader's default, 64). Throws
    /// <see cref="JsonException"/> for malformed JSON. The bytes live in a buffer of the calling thread that its next
    /// call reuses: copy them before then.
    /// </summary>
    public static ReadOnlySpan<byte> Encode(ReadOnlySpan<byte> utf8Json, int maxDepth = 0)
    {
        var reader = new Utf8JsonReader(utf8Json, new JsonReaderOptions { MaxDepth = maxDepth });
        var writer = new Writer(scratch ??= new byte[Math.Max(256, utf8Json.Length * 2)]);
        reader.Read(); // StartObject
        WriteStructFields(ref reader, ref writer);
        if (writer.Buffer.Length <= 64 * 1024)
        {
            scratch = writer.Buffer; // keep a grown buffer for the next raise on this thread, unless it got large
        }

        return writer.Buffer.AsSpan(0, writer.Written.Length);
    }

    /// <summary>The entries of the object the reader is at (after its StartObject), up to and including its EndObject.</summary>
    private static void WriteStructFields(ref Utf8JsonReader reader, ref Writer writer)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            writer.Byte(StructFieldsTag);
            var entry = writer.BeginLength();
            writer.Byte(EntryKeyTag);
            WriteStringBytes(ref reader, ref writer);
            reader.Read();
            writer.Byte(EntryValueTag);
            var value = writer.BeginLength();
            WriteValue(ref reader, ref writer);
            writer.EndLength(value);
            writer.EndLength(entry);
        }
    }

    /// <summary>The body of a <c>Value</c> for the token the reader is at (a whole object or array is consumed).</summary>
    private static void WriteValue(ref Utf8JsonReader reader, ref Writer writer)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.StartObject:
            {
                writer.Byte(StructTag);
                var body = writer.BeginLength();
                WriteStructFields(ref reader, ref writer);
                writer.EndLength(body);
                break;
            }

            case JsonTokenType.StartArray:
            {
                writer.Byte(ListTag);
                var body = writer.BeginLength();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    writer.Byte(ListValuesTag);
                    var item = writer.BeginLength();
                    WriteValue(ref reader, ref writer);
                    writer.EndLength(item);
                }

                writer.EndLength(body);
                break;
            }

            case JsonTokenType.String:
                writer.Byte(StringTag);
                WriteStringBytes(ref reader, ref writer);
                break;
            case JsonTokenType.Number:
                WriteNumber(ref reader, ref writer);
                break;
            case JsonTokenType.True:
                writer.Byte(BoolTag);
                writer.Byte(1);
                break;
            case JsonTokenType.False:
                writer.Byte(BoolTag);
                writer.Byte(0);
                break;
            default:
                writer.Byte(NullTag);
                writer.Byte(0); // NULL_VALUE
                break;
        }
    }

    private static void WriteNumber(ref Utf8JsonReader reader, ref Writer writer)
    {
        if (reader.TryGetInt64(out var integer))
        {
            if (integer is > MaxSafeInteger or < -MaxSafeInteger)
            {
                WriteDigitsAsString(reader.ValueSpan, ref writer);
            }
            else
            {
                writer.Byte(NumberTag);
                writer.Double(integer);
            }

            return;
        }

        var raw = reader.ValueSpan;
        if (raw.IndexOfAny((byte)'.', (byte)'e', (byte)'E') < 0)
        {
            // An integer beyond long (ulong, BigInteger, a long decimal): keep every digit.
            WriteDigitsAsString(raw, ref writer);
            return;
        }

        writer.Byte(NumberTag);
        writer.Double(reader.GetDouble());
    }

    private static void WriteDigitsAsString(ReadOnlySpan<byte> digits, ref Writer writer)
    {
        writer.Byte(StringTag);
        writer.Varint((uint)digits.Length);
        writer.Bytes(digits);
    }

    /// <summary>A length-prefixed UTF-8 string: the property name or string value the reader is at, unescaped.</summary>
    private static void WriteStringBytes(ref Utf8JsonReader reader, ref Writer writer)
    {
        var raw = reader.ValueSpan;
        if (!reader.ValueIsEscaped)
        {
            writer.Varint((uint)raw.Length);
            writer.Bytes(raw);
            return;
        }

        // Unescaped text is never longer than its escaped form.
        var body = writer.BeginLength();
        writer.Advance(reader.CopyString(writer.Free(raw.Length)));
        writer.EndLength(body);
    }

    /// <summary>A growable output buffer that can fill in a length once its message is written.</summary>
    private ref struct Writer(byte[] buffer)
    {
        private int position;

        public byte[] Buffer { get; private set; } = buffer;

        public readonly ReadOnlySpan<byte> Written => Buffer.AsSpan(0, position);

        public void Byte(byte value)
        {
            Ensure(1);
            Buffer[position++] = value;
        }

        public void Bytes(ReadOnlySpan<byte> value)
        {
            Ensure(value.Length);
            value.CopyTo(Buffer.AsSpan(position));
            position += value.Length;
        }

        public void Double(double value)
        {
            Ensure(8);
            BinaryPrimitives.WriteDoubleLittleEndian(Buffer.AsSpan(position), value);
            position += 8;
        }

        public void Varint(uint value)
        {
            Ensure(5);
            while (value >= 0x80)
            {
                Buffer[position++] = (byte)(value | 0x80);
                value >>= 7;
            }

            Buffer[position++] = (byte)value;
        }

        /// <summary>At least <paramref name="size"/> free bytes after what is written, to fill and then <see cref="Advance"/>.</summary>
        public Span<byte> Free(int size)
        {
            Ensure(size);
            return Buffer.AsSpan(position);
        }

        public void Advance(int count) => position += count;

        /// <summary>Reserves one byte for the length of what follows; returns where, for <see cref="EndLength"/>.</summary>
        public int BeginLength()
        {
            Byte(0);
            return position - 1;
        }

        /// <summary>Writes the length of everything written since <see cref="BeginLength"/> returned <paramref name="at"/>.</summary>
        public void EndLength(int at)
        {
            var length = position - at - 1;
            if (length < 0x80)
            {
                Buffer[at] = (byte)length;
                return;
            }

            var size = VarintSize((uint)length);
            Ensure(size - 1);
            Buffer.AsSpan(at + 1, length).CopyTo(Buffer.AsSpan(at + size));
            position += size - 1;
            var value = (uint)length;
            while (value >= 0x80)
            {
                Buffer[at++] = (byte)(value | 0x80);
                value >>= 7;
            }

            Buffer[at] = (byte)value;
        }

        private static int VarintSize(uint value) => value < 1 << 7 ? 1 : value < 1 << 14 ? 2 : value < 1 << 21 ? 3 : value < 1 << 28 ? 4 : 5;

        private void Ensure(int size)
        {
            if (Buffer.Length - position >= size)
            {
                return;
            }

            var grown = new byte[Math.Max(Buffer.Length * 2, position + size)];
            Buffer.AsSpan(0, position).CopyTo(grown);
            Buffer = grown;
        }
    }
}
