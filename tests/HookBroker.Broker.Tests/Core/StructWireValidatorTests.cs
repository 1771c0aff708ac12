using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using HookBroker.Broker.Core;
using static HookBroker.Broker.Tests.Core.WireBytes;

namespace HookBroker.Broker.Tests.Core;

/// <summary>
/// The wire-format check of a raise's args: what it accepts is exactly what Struct.Parser reads (round trip, same depth),
/// and what it refuses it refuses with a message naming the problem and the byte; it never throws, whatever the bytes.
/// </summary>
public sealed class StructWireValidatorTests
{
    private static readonly string[] ValidJson =
    [
        "{}",
        """{"username":"ali","email":"ali@example.com"}""",
        """{"n":1.5,"big":"9007199254740993","yes":true,"no":false,"nothing":null}""",
        """{"list":[1,"two",null,true,{"k":"v"},[[]]],"empty_list":[],"empty_struct":{}}""",
        """{"nested":{"a":{"b":{"c":[{"d":[1,2,3]}]}}}}""",
        """{"ключ":"значение","emoji":"🎉 ünïcödé","":"empty key","esc":"\u0000\n\"\\"}""",
        """{"sent_at":"2025-01-01T00:00:00.000Z","payload":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","seq":123456}""",
    ];

    public static TheoryData<string> ValidArgs() => [.. ValidJson];

    [Theory]
    [MemberData(nameof(ValidArgs))]
    public void Valid_args_are_accepted_with_the_depth_of_the_parsed_struct_and_round_trip_through_Struct_Parser(string json)
    {
        var original = Struct.Parser.ParseJson(json);
        var bytes = original.ToByteArray();

        var shape = StructWireValidator.Inspect(bytes);

        Assert.Null(shape.Problem);
        Assert.Equal(DepthOf(original), shape.Depth);
        Assert.Equal(original, Struct.Parser.ParseFrom(bytes));
    }

    [Fact]
    public void Empty_bytes_are_an_empty_struct_one_level_deep()
    {
        var shape = StructWireValidator.Inspect([]);

        Assert.Equal(new StructWireShape(1, null), shape);
        Assert.Equal(new Struct(), Struct.Parser.ParseFrom(ByteString.Empty));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(32)]
    [InlineData(33)]
    [InlineData(100)]
    public void Nested_structs_count_one_level_each(int depth)
    {
        var args = new Struct { Fields = { ["leaf"] = Value.ForString("x") } };
        for (var level = 1; level < depth; level++)
        {
            args = new Struct { Fields = { ["n"] = Value.ForStruct(args) } };
        }

        Assert.Equal(new StructWireShape(depth, null), StructWireValidator.Inspect(args.ToByteArray()));
    }

    [Fact]
    public void Lists_count_as_a_level_like_structs_do()
    {
        // 16 structs each holding a list holding the next struct: 33 levels (the broker's in-process test counts the same).
        var args = new Struct();
        for (var i = 0; i < 16; i++)
        {
            args = new Struct { Fields = { ["l"] = Value.ForList(Value.ForStruct(args)) } };
        }

        Assert.Equal(33, DepthOf(args));
        Assert.Equal(new StructWireShape(33, null), StructWireValidator.Inspect(args.ToByteArray()));
    }

    [Fact]
    public void Lists_of_lists_count_each_list()
    {
        var inner = Value.ForList(Value.ForList(Value.ForList(Value.ForNumber(1))));
        var args = new Struct { Fields = { ["a"] = Value.ForNumber(0), ["l"] = inner, ["b"] = Value.ForStruct(new Struct()) } };

        Assert.Equal(new StructWireShape(4, null), StructWireValidator.Inspect(args.ToByteArray()));
    }

    [Fact]
    public void Hostile_nesting_far_past_any_stack_is_measured_exactly_without_overflowing()
    {
        // Too deep for Struct.Parser (recursion limit) or a recursive walk; the check walks it with its own stack.
        var bytes = NestedStructs(100_000);

        Assert.Equal(new StructWireShape(100_000, null), StructWireValidator.Inspect(bytes));
        Assert.Throws<InvalidProtocolBufferException>(() => Struct.Parser.ParseFrom(bytes));
    }

    [Fact]
    public void Unknown_fields_and_known_numbers_with_another_wire_type_are_skipped_as_parsers_skip_them()
    {
        byte[] bytes =
        [
            .. Entry("a"u8.ToArray(), StringValue("b"u8.ToArray())),
            .. Tag(7, Varint), .. VarintOf(300),                  // unknown varint on Struct
            .. Tag(8, Fixed64), 1, 2, 3, 4, 5, 6, 7, 8,           // unknown fixed64
            .. Tag(9, Fixed32), 1, 2, 3, 4,                       // unknown fixed32
            .. Field(10, [0xFF, 0xFE]),                           // unknown bytes: not text, any bytes
            .. Tag(1, Varint), .. VarintOf(1),                    // Struct.fields as a varint: unknown
            .. Entry("s"u8.ToArray(), [.. Tag(5, Varint), 1]),    // Value.struct_value as a varint: unknown
        ];

        Assert.Equal(new StructWireShape(1, null), StructWireValidator.Inspect(bytes));
        var parsed = Struct.Parser.ParseFrom(bytes);
        Assert.Equal("b", parsed.Fields["a"].StringValue);
    }

    [Theory]
    [InlineData("truncated length", "field 1 claims 5 bytes, more than the 1 left in its enclosing Struct at byte 1")]
    [InlineData("length past the enclosing message", "field 1 claims 9 bytes, more than the 1 left in its enclosing Struct field entry at byte 3")]
    [InlineData("cut-off varint", "field 7 (a varint) runs past the end of its enclosing Struct (ending at byte 2) at byte 1")]
    [InlineData("overlong varint", "field 7 (a varint) is a varint longer than 10 bytes at byte 1")]
    [InlineData("cut-off tag", "a field tag runs past the end of its enclosing Struct (ending at byte 1) at byte 0")]
    [InlineData("field number 0", "invalid field tag 2 at byte 0")]
    [InlineData("cut-off number", "field 2 (8 bytes) runs past the end of its enclosing Value (ending at byte 11) at byte 8")]
    [InlineData("cut-off fixed32", "field 9 (4 bytes) runs past the end of its enclosing Struct (ending at byte 3) at byte 1")]
    [InlineData("invalid UTF-8 key", "a key is not valid UTF-8 at byte 4")]
    [InlineData("invalid UTF-8 string", "a string value is not valid UTF-8 at byte 9")]
    [InlineData("overlong UTF-8", "a string value is not valid UTF-8 at byte 9")]
    [InlineData("lone surrogate", "a string value is not valid UTF-8 at byte 9")]
    [InlineData("group", "field 3 is a group (wire type 3), which a Struct never has at byte 1")]
    [InlineData("end group", "field 1 is a group (wire type 4), which a Struct never has at byte 1")]
    [InlineData("wire type 6", "field 1 has the invalid wire type 6 at byte 1")]
    [InlineData("wire type 7", "field 2 has the invalid wire type 7 at byte 1")]
    public void Malformed_args_are_refused_naming_the_problem_and_the_byte(string name, string expected)
    {
        var bytes = Malformed(name);

        var shape = StructWireValidator.Inspect(bytes);

        Assert.Equal(expected, shape.Problem);
        Assert.Equal(0, shape.Depth);
    }

    [Theory]
    [InlineData("truncated length")]
    [InlineData("length past the enclosing message")]
    [InlineData("cut-off varint")]
    [InlineData("overlong varint")]
    [InlineData("cut-off tag")]
    [InlineData("field number 0")]
    [InlineData("cut-off number")]
    [InlineData("cut-off fixed32")]
    [InlineData("end group")]
    [InlineData("wire type 6")]
    [InlineData("wire type 7")]
    public void What_is_refused_as_malformed_protobuf_Struct_Parser_refuses_too(string name) =>
        Assert.Throws<InvalidProtocolBufferException>(() => Struct.Parser.ParseFrom(Malformed(name)));

    [Fact]
    public void Every_truncation_of_valid_args_is_either_accepted_and_readable_or_refused_never_a_crash()
    {
        var bytes = Struct.Parser.ParseJson(ValidJson[3]).ToByteArray();
        for (var length = 0; length <= bytes.Length; length++)
        {
            AssertAgreesWithParser(bytes[..length]);
        }
    }

    [Fact]
    public void Random_corruptions_never_crash_and_what_is_accepted_Struct_Parser_reads()
    {
        var random = new Random(20250101);
        var valid = ValidJson.Select(json => Struct.Parser.ParseJson(json).ToByteArray()).Where(b => b.Length > 0).ToList();
        for (var i = 0; i < 20_000; i++)
        {
            var bytes = (byte[])valid[random.Next(valid.Count)].Clone();
            for (var flips = random.Next(1, 4); flips > 0; flips--)
            {
                bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            }

            AssertAgreesWithParser(bytes);
        }
    }

    private static void AssertAgreesWithParser(byte[] bytes)
    {
        var shape = StructWireValidator.Inspect(bytes);
        Struct? parsed = null;
        try
        {
            parsed = Struct.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException)
        {
            // Struct.Parser refuses it: so must the check.
        }

        if (shape.Problem is null)
        {
            Assert.NotNull(parsed);
            // Merged duplicate fields can only make the parsed struct shallower than its bytes.
            Assert.InRange(DepthOf(parsed), 1, shape.Depth);
        }
        else
        {
            Assert.Equal(0, shape.Depth);
            Assert.Matches(" at byte [0-9]+$", shape.Problem);
        }

        if (parsed is null)
        {
            Assert.NotNull(shape.Problem);
        }
    }

    private static byte[] Malformed(string name) => name switch
    {
        "truncated length" => [.. Tag(1, LengthDelimited), 5, 0x0A],
        "length past the enclosing message" => Field(1, [.. Tag(1, LengthDelimited), 9, (byte)'k']),
        "cut-off varint" => [.. Tag(7, Varint), 0x80],
        "overlong varint" => [.. Tag(7, Varint), 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        "cut-off tag" => [0x80],
        "field number 0" => [.. Tag(0, LengthDelimited), 0],
        "cut-off number" => Entry("k"u8.ToArray(), [.. Tag(2, Fixed64), 0, 0, 0]),
        "cut-off fixed32" => [.. Tag(9, Fixed32), 1, 2],
        "invalid UTF-8 key" => Entry([(byte)'a', 0xFF], StringValue("v"u8.ToArray())),
        "invalid UTF-8 string" => Entry("k"u8.ToArray(), StringValue([(byte)'o', (byte)'k', 0xC3])),
        "overlong UTF-8" => Entry("k"u8.ToArray(), StringValue([0xC0, 0xAF])),
        "lone surrogate" => Entry("k"u8.ToArray(), StringValue([0xED, 0xA0, 0x80])),
        "group" => [.. Tag(3, StartGroup), .. Tag(3, EndGroup)],
        "end group" => [.. Tag(1, EndGroup)],
        "wire type 6" => [.. Tag(1, 6)],
        "wire type 7" => [.. Tag(2, 7)],
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    /// <summary>The depth the broker always measured on a parsed Struct: the struct is 1, each nested struct or list +1.</summary>
    private static int DepthOf(Struct value) =>
        1 + value.Fields.Values.Select(DepthOf).DefaultIfEmpty(0).Max();

    private static int DepthOf(Value value) => value.KindCase switch
    {
        Value.KindOneofCase.StructValue => DepthOf(value.StructValue),
        Value.KindOneofCase.ListValue => 1 + value.ListValue.Values.Select(DepthOf).DefaultIfEmpty(0).Max(),
        _ => 0,
    };
}
