using System.Buffers;
using System.Globalization;
using System.Text.Unicode;

namespace HookBroker.Broker.Core;

/// <summary>
/// Checks a serialized <c>google.protobuf.Struct</c> (a raise's args) by walking its protobuf wire format, without
/// materializing it: every field well formed and inside its enclosing message, every key and string valid UTF-8, and
/// how deep structs and lists nest. It accepts what <c>Struct.Parser</c> accepts (unknown fields, and known field
/// numbers with an unexpected wire type, are skipped as parsers skip them), except two things no Struct serializer
/// writes, both refused so every subscriber's parser can read what the broker delivers: invalid UTF-8 (Google.Protobuf
/// would silently replace it, other languages' parsers refuse it) and group fields (wire types 3 and 4).
/// The walk is iterative (an explicit stack), so hostile nesting cannot overflow the broker's stack; it allocates
/// nothing unless the input is malformed or nested more than 10 levels deep.
/// </summary>
internal static class StructWireValidator
{
    // google/protobuf/struct.proto, as tags (field number << 3 | wire type 2, length-delimited):
    // Struct { map<string, Value> fields = 1; }, a map entry { string key = 1; Value value = 2; },
    // Value { oneof kind { NullValue null_value = 1; double number_value = 2; string string_value = 3; bool bool_value = 4;
    // Struct struct_value = 5; ListValue list_value = 6; } }, ListValue { repeated Value values = 1; }.
    private const ulong StructFieldsTag = (1 << 3) | LengthDelimitedWire;
    private const ulong EntryKeyTag = (1 << 3) | LengthDelimitedWire;
    private const ulong EntryValueTag = (2 << 3) | LengthDelimitedWire;
    private const ulong ValueStringTag = (3 << 3) | LengthDelimitedWire;
    private const ulong ValueStructTag = (5 << 3) | LengthDelimitedWire;
    private const ulong ValueListTag = (6 << 3) | LengthDelimitedWire;
    private const ulong ListValuesTag = (1 << 3) | LengthDelimitedWire;

    private const int VarintWire = 0;
    private const int Fixed64Wire = 1;
    private const int LengthDelimitedWire = 2;
    private const int StartGroupWire = 3;
    private const int EndGroupWire = 4;
    private const int Fixed32Wire = 5;

    private const int MaxVarintBytes = 10;

    // Three frames per level (struct, map entry, value): args up to 10 levels deep walk on the stack; deeper ones rent.
    private const int StackFrames = 32;

    /// <summary>How deep <paramref name="serialized"/> nests, or why it is not a well-formed Struct.</summary>
    public static StructWireShape Inspect(ReadOnlySpan<byte> serialized)
    {
        Span<Frame> frames = stackalloc Frame[StackFrames];
        Frame[]? rented = null;
        try
        {
            return Walk(serialized, frames, ref rented);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<Frame>.Shared.Return(rented);
            }
        }
    }

    private static StructWireShape Walk(ReadOnlySpan<byte> data, Span<Frame> frames, ref Frame[]? rented)
    {
        var position = 0;
        var count = 1;
        frames[0] = new Frame(Shape.Struct, data.Length);
        int depth = 1, maxDepth = 1;
        while (count > 0)
        {
            var top = frames[count - 1];
            if (position == top.End)
            {
                count--;
                depth -= top.Shape is Shape.Struct or Shape.List ? 1 : 0;
                continue;
            }

            var tagAt = position;
            if (ReadVarint(data, ref position, top.End, out var tag) is not VarintRead.Ok and var badTag)
            {
                return VarintProblem(badTag, "a field tag", tagAt, top);
            }

            if (tag > uint.MaxValue || tag >> 3 == 0)
            {
                return Malformed($"invalid field tag {tag}", tagAt);
            }

            var child = ChildOf(top.Shape, tag);
            var wireType = (int)(tag & 7);
            var field = (int)(tag >> 3);
            if (child is Shape.None)
            {
                var isText = (top.Shape == Shape.Entry && tag == EntryKeyTag) || (top.Shape == Shape.Value && tag == ValueStringTag);
                if (SkipValue(data, ref position, top, field, wireType, isText) is { } problem)
                {
                    return problem;
                }

                continue;
            }

            var lengthAt = position;
            if (ReadLength(data, ref position, top, out var length) is not VarintRead.Ok and var badLength)
            {
                return LengthProblem(badLength, field, length, lengthAt, position, top);
            }

            if (count == frames.Length)
            {
                rented = Grow(frames, rented);
                frames = rented;
            }

            frames[count++] = new Frame(child, position + (int)length);
            if (child is Shape.Struct or Shape.List)
            {
                maxDepth = Math.Max(maxDepth, ++depth);
            }
        }

        return new StructWireShape(maxDepth, null);
    }

    /// <summary>The message a field opens, or <see cref="Shape.None"/> for a key, a scalar or an unknown field.</summary>
    private static Shape ChildOf(Shape parent, ulong tag) => parent switch
    {
        Shape.Struct when tag == StructFieldsTag => Shape.Entry,
        Shape.Entry when tag == EntryValueTag => Shape.Value,
        Shape.Value when tag == ValueStructTag => Shape.Struct,
        Shape.Value when tag == ValueListTag => Shape.List,
        Shape.List when tag == ListValuesTag => Shape.Value,
        _ => Shape.None,
    };

    /// <summary>Moves past a field's value (a key, a string, a scalar or an unknown field); the problem, if any.</summary>
    private static StructWireShape? SkipValue(ReadOnlySpan<byte> data, ref int position, Frame top, int field, int wireType, bool isText)
    {
        var valueAt = position;
        switch (wireType)
        {
            case VarintWire:
                return ReadVarint(data, ref position, top.End, out _) is not VarintRead.Ok and var bad
                    ? VarintProblem(bad, $"field {field} (a varint)", valueAt, top)
                    : null;
            case Fixed64Wire:
                return Advance(ref position, 8, top.End) ? null : CutOff($"field {field} (8 bytes)", valueAt, top);
            case Fixed32Wire:
                return Advance(ref position, 4, top.End) ? null : CutOff($"field {field} (4 bytes)", valueAt, top);
            case LengthDelimitedWire:
                if (ReadLength(data, ref position, top, out var length) is not VarintRead.Ok and var badLength)
                {
                    return LengthProblem(badLength, field, length, valueAt, position, top);
                }

                if (isText && !Utf8.IsValid(data.Slice(position, (int)length)))
                {
                    return Malformed($"{(top.Shape == Shape.Entry ? "a key" : "a string value")} is not valid UTF-8", position);
                }

                position += (int)length;
                return null;
            case StartGroupWire or EndGroupWire:
                return Malformed($"field {field} is a group (wire type {wireType}), which a Struct never has", valueAt);
            default:
                return Malformed($"field {field} has the invalid wire type {wireType}", valueAt);
        }
    }

    /// <summary>Reads a length prefix; <see cref="VarintRead.TooLong"/> when it exceeds what is left of the enclosing message.</summary>
    private static VarintRead ReadLength(ReadOnlySpan<byte> data, ref int position, Frame top, out ulong length)
    {
        var read = ReadVarint(data, ref position, top.End, out length);
        return read == VarintRead.Ok && length > (ulong)(top.End - position) ? VarintRead.TooLong : read;
    }

    /// <summary>Reads a varint of at most 10 bytes that ends before <paramref name="end"/>.</summary>
    private static VarintRead ReadVarint(ReadOnlySpan<byte> data, ref int position, int end, out ulong value)
    {
        value = 0;
        for (var i = 0; i < MaxVarintBytes; i++)
        {
            if (position == end)
            {
                return VarintRead.CutOff;
            }

            var b = data[position++];
            value |= (ulong)(b & 0x7F) << (7 * i);
            if (b < 0x80)
            {
                return VarintRead.Ok;
            }
        }

        return VarintRead.Overlong;
    }

    private static bool Advance(ref int position, int bytes, int end)
    {
        if (end - position < bytes)
        {
            return false;
        }

        position += bytes;
        return true;
    }

    /// <summary>A rented stack twice as large holding <paramref name="frames"/>; returns the previous rented one.</summary>
    private static Frame[] Grow(ReadOnlySpan<Frame> frames, Frame[]? rented)
    {
        var larger = ArrayPool<Frame>.Shared.Rent(frames.Length * 2);
        frames.CopyTo(larger);
        if (rented is not null)
        {
            ArrayPool<Frame>.Shared.Return(rented);
        }

        return larger;
    }

    // Problems: messages are built only here, once the input is known to be malformed.

    private static StructWireShape VarintProblem(VarintRead read, string what, int at, Frame top) => read == VarintRead.Overlong
        ? Malformed($"{what} is a varint longer than {MaxVarintBytes} bytes", at)
        : CutOff(what, at, top);

    private static StructWireShape LengthProblem(VarintRead read, int field, ulong length, int at, int after, Frame top) => read == VarintRead.TooLong
        ? Malformed($"field {field} claims {length} bytes, more than the {top.End - after} left in its enclosing {Describe(top.Shape)}", at)
        : VarintProblem(read, $"the length of field {field}", at, top);

    private static StructWireShape CutOff(string what, int at, Frame top) =>
        Malformed($"{what} runs past the end of its enclosing {Describe(top.Shape)} (ending at byte {top.End})", at);

    private static StructWireShape Malformed(string problem, int at) =>
        StructWireShape.Malformed(string.Create(CultureInfo.InvariantCulture, $"{problem} at byte {at}"));

    private static string Describe(Shape shape) => shape switch
    {
        Shape.Struct => "Struct",
        Shape.Entry => "Struct field entry",
        Shape.Value => "Value",
        _ => "ListValue",
    };

    /// <summary>The kind of message a frame walks.</summary>
    private enum Shape : byte
    {
        None,
        Struct,
        Entry,
        Value,
        List,
    }

    /// <summary>How reading a varint (or a length prefix) went.</summary>
    private enum VarintRead : byte
    {
        Ok,
        CutOff,
        Overlong,
        TooLong,
    }

    /// <summary>A message being walked and the offset where it ends.</summary>
    private readonly record struct Frame(Shape Shape, int End);
}
