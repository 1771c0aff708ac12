namespace HookBroker.Broker.Tests.Core;

/// <summary>Protobuf wire-format bytes written by hand, for inputs no serializer produces (malformed, odd or very deep).</summary>
public static class WireBytes
{
    public const int Varint = 0;
    public const int Fixed64 = 1;
    public const int LengthDelimited = 2;
    public const int StartGroup = 3;
    public const int EndGroup = 4;
    public const int Fixed32 = 5;

    public static byte[] Tag(int field, int wireType) => VarintOf((ulong)((field << 3) | wireType));

    public static byte[] VarintOf(ulong value)
    {
        var bytes = new List<byte>();
        do
        {
            var b = (byte)(value & 0x7F);
            value >>= 7;
            bytes.Add(value == 0 ? b : (byte)(b | 0x80));
        }
        while (value != 0);
        return [.. bytes];
    }

    /// <summary>A length-delimited field: tag, length, content.</summary>
    public static byte[] Field(int field, params byte[][] content)
    {
        byte[] body = [.. content.SelectMany(c => c)];
        return [.. Tag(field, LengthDelimited), .. VarintOf((ulong)body.Length), .. body];
    }

    /// <summary>A Struct entry <c>key: value</c> (Struct field 1 holding a map entry of key = 1, value = 2).</summary>
    public static byte[] Entry(byte[] key, byte[] value) => Field(1, Field(1, key), Field(2, value));

    /// <summary>A Value holding a string (field 3).</summary>
    public static byte[] StringValue(byte[] utf8) => Field(3, utf8);

    /// <summary>
    /// A Struct nested <paramref name="levels"/> deep (<c>{"n": {"n": ... {}}}</c>), written from the inside out into one
    /// buffer, so even a very deep one costs linear time.
    /// </summary>
    public static byte[] NestedStructs(int levels)
    {
        var buffer = new byte[levels * 16];
        var start = buffer.Length;
        void Prepend(params byte[] bytes)
        {
            start -= bytes.Length;
            bytes.CopyTo(buffer, start);
        }

        // The innermost struct is empty; each level wraps the struct so far as {"n": <struct>}.
        for (var level = 1; level < levels; level++)
        {
            var structLength = buffer.Length - start;
            Prepend([.. Tag(5, LengthDelimited), .. VarintOf((ulong)structLength)]); // Value.struct_value
            var valueLength = buffer.Length - start;
            Prepend([.. Tag(1, LengthDelimited), 1, (byte)'n', .. Tag(2, LengthDelimited), .. VarintOf((ulong)valueLength)]); // entry
            var entryLength = buffer.Length - start;
            Prepend([.. Tag(1, LengthDelimited), .. VarintOf((ulong)entryLength)]); // Struct.fields
        }

        return buffer[start..];
    }
}
