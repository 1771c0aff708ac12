using System.Buffers.Binary;
using System.Text;

namespace HookBroker.Client.Unit.Tests;

/// <summary>Protobuf wire bytes written by hand, for encodings no serializer produces (repeats, reorders, unknown fields).</summary>
internal static class Wire
{
    public static byte[] Varint(ulong value)
    {
        var bytes = new List<byte>();
        while (value >= 0x80)
        {
            bytes.Add((byte)(value | 0x80));
            value >>= 7;
        }

        bytes.Add((byte)value);
        return [.. bytes];
    }

    public static byte[] Tag(int field, int wireType) => Varint((ulong)((field << 3) | wireType));

    /// <summary>A length-delimited field: tag, length, body.</summary>
    public static byte[] Len(int field, params byte[][] body)
    {
        var content = Concat(body);
        return Concat(Tag(field, 2), Varint((ulong)content.Length), content);
    }

    public static byte[] Text(string value) => Encoding.UTF8.GetBytes(value);

    public static byte[] Fixed64(int field, double value)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteDoubleLittleEndian(bytes, value);
        return Concat(Tag(field, 1), bytes);
    }

    public static byte[] VarintField(int field, ulong value) => Concat(Tag(field, 0), Varint(value));

    /// <summary>A Struct map entry (field 1 of Struct) with the given key and Value body.</summary>
    public static byte[] Entry(string key, byte[] valueBody) => Len(1, Len(1, Text(key)), Len(2, valueBody));

    public static byte[] NumberValue(double value) => Fixed64(2, value);

    public static byte[] StringValue(string value) => Len(3, Text(value));

    public static byte[] StructValue(params byte[][] entries) => Len(5, entries);

    public static byte[] ListValue(params byte[][] valueBodies) => Len(6, [.. valueBodies.Select(v => Len(1, v))]);

    public static byte[] Concat(params byte[][] parts) => [.. parts.SelectMany(p => p)];
}
