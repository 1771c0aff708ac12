using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using HookBroker.Client.Internal;
using static HookBroker.Client.Unit.Tests.Wire;

namespace HookBroker.Client.Unit.Tests;

/// <summary>
/// The worker reads a delivery's args, the serialized Struct, straight into JSON (<see cref="StructWireJsonDecoder"/>).
/// What it gives must be, byte for byte, what the old path gave: <c>Struct.Parser</c> then <see cref="ArgsConverter.ToJson"/>
/// (or the same exception). Shapes every serializer writes must take the fast path; encodings only the protobuf format
/// allows must give the old path's answer too.
/// </summary>
public sealed class StructWireJsonDecoderTests
{
    private const double TwoTo53 = 9_007_199_254_740_992d;

    private static readonly double[] Numbers =
    [
        0, -0.0, 1, -1, 42, 2.5, -7.25, 0.1, 1.0 / 3, 1e-7, 5e-324, 1e21, 1e300, -1e300, double.MaxValue, double.MinValue,
        double.Epsilon, TwoTo53, -TwoTo53, TwoTo53 - 1, TwoTo53 + 2, -(TwoTo53 + 2), 1e16, 123456789012345.0, 123456789012.5,
        double.NaN, double.PositiveInfinity, double.NegativeInfinity, 4.35, 100, 1e15 + 0.5,
    ];

    private static readonly string[] Texts =
    [
        string.Empty, "ali", "line\nbreak \"quoted\" \\ slash / tab\t", "é ü ß 中文 😀 𝄞", "\u0001\u001f\u007f", "</script>&'+<>",
        "\u2028\u2029", "a\0b", new string('x', 300), new string('é', 200), "ﬀ\uFEFF", "12345678901234567890",
    ];

    public static TheoryData<string, byte[]> CanonicalShapes()
    {
        var data = new TheoryData<string, byte[]>();
        void Add(string name, Struct value) => data.Add(name, value.ToByteArray());

        Add("empty", new Struct());
        Add("benchmark args", Struct.Parser.ParseJson("""{"ts":123456789012345,"seq":7,"username":"user-7","email":"user-7@example.com","pad":"xxxxxxxx"}"""));
        Add("null", new Struct { Fields = { ["a"] = Value.ForNull() } });
        Add("bools", new Struct { Fields = { ["on"] = Value.ForBool(true), ["off"] = Value.ForBool(false) } });
        var numbers = new Struct();
        for (var i = 0; i < Numbers.Length; i++)
        {
            numbers.Fields[$"n{i}"] = Value.ForNumber(Numbers[i]);
        }

        Add("numbers", numbers);
        var texts = new Struct();
        for (var i = 0; i < Texts.Length; i++)
        {
            texts.Fields[$"s{i}"] = Value.ForString(Texts[i]);
        }

        Add("strings", texts);
        var keys = new Struct();
        foreach (var text in Texts)
        {
            keys.Fields[text] = Value.ForString(text);
        }

        Add("keys that need escaping", keys);
        Add("nested", Struct.Parser.ParseJson("""{"user":{"id":1,"tags":["a","b"],"address":{"city":"Paris","zip":null}},"list":[1,"x",null,{"deep":[1,[2,[3,{}]]]},[],{}],"e":{}}"""));
        Add("empty ones", new Struct { Fields = { ["s"] = Value.ForStruct(new Struct()), ["l"] = Value.ForList(), ["t"] = Value.ForString(string.Empty) } });
        Add("a value with no kind", new Struct { Fields = { ["v"] = new Value(), ["l"] = Value.ForList(new Value(), Value.ForNumber(1)) } });
        Add("an empty key (left out of its entry)", new Struct { Fields = { [string.Empty] = Value.ForNumber(1), ["o"] = Value.ForStruct(new Struct { Fields = { [string.Empty] = new Value() } }) } });
        var many = new Struct();
        for (var i = 0; i < 300; i++)
        {
            many.Fields[$"key{i}"] = Value.ForNumber(i);
        }

        Add("300 keys", many);
        Add("a long value (two-byte lengths)", new Struct { Fields = { ["pad"] = Value.ForString(new string('y', 20_000)), ["inner"] = Value.ForStruct(new Struct { Fields = { ["a"] = Value.ForString(new string('z', 200)) } }) } });
        Add("nested 29 levels", Nested(29, list: false));
        Add("lists nested 29 levels", Nested(29, list: true));
        return data;
    }

    [Theory(Timeout = 10_000)]
    [MemberData(nameof(CanonicalShapes))]
    public void What_serializers_write_takes_the_fast_path_and_reads_as_the_old_path_did(string shape, byte[] serialized)
    {
        var expected = OldPath(serialized);

        using var fast = StructWireJsonDecoder.TryDecodeFast(serialized);

        Assert.True(fast is not null, $"{shape}: the fast path declined");
        Assert.Equal(expected, fast.Root.GetRawText());
    }

    [Fact(Timeout = 30_000)]
    public void Random_structs_read_as_the_old_path_did()
    {
        var random = new Random(20261124);
        for (var i = 0; i < 3_000; i++)
        {
            var serialized = RandomStruct(random, depth: 0).ToByteArray();
            var expected = OldPath(serialized);

            using var fast = StructWireJsonDecoder.TryDecodeFast(serialized);

            Assert.True(fast is not null, $"case {i}: the fast path declined");
            Assert.Equal(expected, fast.Root.GetRawText());
        }
    }

    public static TheoryData<string, byte[]> UnusualEncodings()
    {
        var data = new TheoryData<string, byte[]>();
        var one = NumberValue(1);
        data.Add("no args at all", []);
        data.Add("a repeated key: the last value, at the first key's place", Concat(Entry("a", one), Entry("b", NumberValue(2)), Entry("a", StringValue("last"))));
        data.Add("a repeated key among many", Concat([.. Enumerable.Range(0, 40).Select(i => Entry($"k{i}", NumberValue(i))), Entry("k7", StringValue("again"))]));
        data.Add("a repeated key in a nested struct", Entry("o", StructValue(Entry("x", one), Entry("x", NumberValue(2)))));
        data.Add("the same key in different structs", Concat(Entry("x", one), Entry("o", StructValue(Entry("x", one)))));
        data.Add("a value with two kinds: the last wins", Entry("v", Concat(NumberValue(1), StringValue("then text"))));
        data.Add("two structs in one value merge", Entry("v", Concat(StructValue(Entry("a", one)), StructValue(Entry("b", one), Entry("a", NumberValue(3))))));
        data.Add("two lists in one value merge", Entry("v", Concat(ListValue(one), ListValue(NumberValue(2)))));
        data.Add("a struct, a number, a struct: no merge", Entry("v", Concat(StructValue(Entry("a", one)), NumberValue(5), StructValue(Entry("b", one)))));
        data.Add("an entry value before its key", Len(1, Len(2, one), Len(1, Text("k"))));
        data.Add("an entry without a key", Len(1, Len(2, one)));
        data.Add("an entry without a value", Len(1, Len(1, Text("k"))));
        data.Add("an entry with its key twice", Len(1, Len(1, Text("a")), Len(1, Text("b")), Len(2, one)));
        data.Add("an empty entry", Len(1));
        data.Add("unknown fields everywhere", Concat(
            VarintField(9, 300), Fixed64(10, 1.5), Len(11, Text("junk")), Tag(12, 5), [1, 2, 3, 4],
            Len(1, Len(1, Text("k")), Len(2, Concat(VarintField(15, 1), NumberValue(2), Len(16, Text("x"))))),
            Entry("l", Concat(Len(6, Concat(VarintField(2, 1), Len(1, one), Fixed64(3, 0))), VarintField(99, 5)))));
        data.Add("unknown fields inside an entry", Len(1, Len(1, Text("k")), VarintField(3, 1), Len(2, one)));
        data.Add("a known field number with another wire type", Concat(Entry("a", Concat(VarintField(2, 7), Tag(3, 5), [0, 0, 0, 0])), VarintField(1, 1)));
        data.Add("a null with a nonzero enum", Entry("n", VarintField(1, 5)));
        data.Add("a bool of 2 and a long varint", Concat(Entry("b", VarintField(4, 2)), Entry("c", Concat(Tag(4, 0), [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]))));
        data.Add("an overlong key tag", Len(1, Concat([0x8A, 0x00], Varint(1), Text("k")), Len(2, one)));
        data.Add("invalid UTF-8 in a string", Entry("s", Len(3, [0x61, 0xFF, 0x62])));
        data.Add("invalid UTF-8 in a key", Len(1, Len(1, [0xC3]), Len(2, one)));
        data.Add("a group field", Concat(Tag(7, 3), Tag(7, 4), Entry("a", one)));
        data.Add("truncated", Entry("a", StringValue("text"))[..^2]);
        data.Add("a length past the end", Concat(Tag(1, 2), Varint(50), Text("short")));
        data.Add("a truncated number", Entry("a", Concat(Tag(2, 1), [0, 0, 0])));
        data.Add("field number zero", Concat(Tag(0, 0), Varint(1)));
        data.Add("a varint of eleven bytes", Concat(Tag(9, 0), [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]));
        for (var depth = 28; depth <= 40; depth += 2)
        {
            data.Add($"nested {depth} levels", Nested(depth, list: false).ToByteArray());
            data.Add($"lists nested {depth} levels", Nested(depth, list: true).ToByteArray());
        }

        data.Add("nested 70 levels", Nested(70, list: false).ToByteArray());
        return data;
    }

    [Theory(Timeout = 10_000)]
    [MemberData(nameof(UnusualEncodings))]
    public void Every_other_encoding_reads_as_the_old_path_did_or_fails_as_it_did(string encoding, byte[] serialized)
    {
        var expected = Outcome(() => OldPath(serialized));

        var actual = Outcome(() =>
        {
            using var decoded = StructWireJsonDecoder.Decode(serialized);
            return decoded.Root.GetRawText();
        });

        Assert.True(expected == actual, $"{encoding}: expected {expected}, got {actual}");
    }

    [Theory(Timeout = 10_000)]
    [InlineData("a repeated key")]
    [InlineData("a repeated key among many")]
    [InlineData("a value with two kinds")]
    [InlineData("invalid UTF-8")]
    public void Encodings_the_fast_path_cannot_render_exactly_are_left_to_the_old_path(string encoding)
    {
        var one = NumberValue(1);
        var serialized = encoding switch
        {
            "a repeated key" => Concat(Entry("a", one), Entry("a", NumberValue(2))),
            "a repeated key among many" => Concat([.. Enumerable.Range(0, 40).Select(i => Entry($"k{i}", one)), Entry("k39", one)]),
            "a value with two kinds" => Entry("v", Concat(NumberValue(1), StringValue("x"))),
            _ => Entry("s", Len(3, [0xFF])),
        };

        Assert.Null(StructWireJsonDecoder.TryDecodeFast(serialized));
    }

    [Fact(Timeout = 10_000)]
    public void Decoding_on_many_threads_at_once_gives_each_its_own_args()
    {
        var inputs = Enumerable.Range(0, 64).Select(i => (Bytes: Struct.Parser.ParseJson($$"""{"seq":{{i}},"text":"{{new string('x', i * 10)}}"}""").ToByteArray(), Index: i)).ToArray();

        Parallel.For(0, 20_000, new ParallelOptions { MaxDegreeOfParallelism = 4 }, n =>
        {
            var (bytes, index) = inputs[n % inputs.Length];
            using var decoded = StructWireJsonDecoder.Decode(bytes);
            Assert.Equal(index, decoded.Root.GetProperty("seq").GetInt32());
            Assert.Equal(index * 10, decoded.Root.GetProperty("text").GetString()!.Length);
        });
    }

    /// <summary>The old path: the Struct tree, then <see cref="ArgsConverter.ToJson"/>.</summary>
    private static string OldPath(byte[] serialized) => ArgsConverter.ToJson(Struct.Parser.ParseFrom(serialized)).GetRawText();

    private static string Outcome(Func<string> read)
    {
        try
        {
            return "json " + read();
        }
#pragma warning disable CA1031 // The exception's type is the outcome compared.
        catch (Exception e)
#pragma warning restore CA1031
        {
            return "throws " + e.GetType().Name;
        }
    }

    private static Struct Nested(int depth, bool list)
    {
        var value = Value.ForNumber(depth);
        for (var i = 1; i < depth; i++)
        {
            value = list ? Value.ForList(value, Value.ForString("x")) : Value.ForStruct(new Struct { Fields = { ["d"] = value, ["x"] = Value.ForBool(true) } });
        }

        return new Struct { Fields = { ["root"] = value } };
    }

    private static Struct RandomStruct(Random random, int depth)
    {
        var result = new Struct();
        var count = random.Next(depth == 0 ? 12 : 6);
        for (var i = 0; i < count; i++)
        {
            result.Fields[RandomText(random)] = RandomValue(random, depth + 1);
        }

        return result;
    }

    private static Value RandomValue(Random random, int depth) => random.Next(depth < 5 ? 8 : 6) switch
    {
        0 => Value.ForNull(),
        1 => Value.ForBool(random.Next(2) == 0),
        2 => Value.ForNumber(Numbers[random.Next(Numbers.Length)]),
        3 => Value.ForNumber(random.Next(3) switch
        {
            0 => random.Next(-1_000_000, 1_000_000),
            1 => (random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-20, 40)),
            _ => BitConverter.Int64BitsToDouble(random.NextInt64()),
        }),
        4 or 5 => Value.ForString(RandomText(random)),
        6 => Value.ForStruct(RandomStruct(random, depth)),
        _ => Value.ForList([.. Enumerable.Range(0, random.Next(5)).Select(_ => RandomValue(random, depth + 1))]),
    };

    private static string RandomText(Random random)
    {
        const string Alphabet = "abcXYZ019 _-\"\\/\n\t\u0001\u007fé中😀<>&'+\u2028";
        if (random.Next(4) == 0)
        {
            return Texts[random.Next(Texts.Length)];
        }

        var length = random.Next(12);
        var chars = new System.Text.StringBuilder();
        for (var i = 0; i < length; i++)
        {
            // Whole text elements only: the emoji is a surrogate pair.
            var at = random.Next(Alphabet.Length);
            if (char.IsLowSurrogate(Alphabet[at]))
            {
                at--;
            }

            chars.Append(Alphabet[at]);
            if (char.IsHighSurrogate(Alphabet[at]))
            {
                chars.Append(Alphabet[at + 1]);
            }
        }

        return chars.ToString();
    }
}
