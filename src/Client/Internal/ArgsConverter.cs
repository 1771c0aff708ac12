using System.Buffers;
using System.Globalization;
using System.Text.Json;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace HookBroker.Client.Internal;

/// <summary>
/// Moves args between .NET objects, JSON and the wire's <see cref="Struct"/>. Struct numbers are doubles, so integers
/// beyond 2^53 travel as strings (the binder turns numeric strings back into integers).
/// </summary>
internal static class ArgsConverter
{
    private const long MaxSafeInteger = 9_007_199_254_740_992; // 2^53

    /// <summary>The default serializer options for args: property names as written.</summary>
    public static readonly JsonSerializerOptions DefaultRaiseOptions = new();

    /// <summary>An args object (anonymous, record, POCO, dictionary, JsonElement) as a Struct; null gives an empty one.</summary>
    public static Struct ToStruct(object? args, JsonSerializerOptions options)
    {
        if (args is null)
        {
            return new Struct();
        }

        var element = args as JsonElement? ?? JsonSerializer.SerializeToElement(args, args.GetType(), options);
        if (element.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined)
        {
            return new Struct();
        }

        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new ArgumentException(
                $"Event args must be a JSON object (an anonymous object, a record, a POCO or a dictionary); {args.GetType()} serialized as {element.ValueKind}.",
                nameof(args));
        }

        return ToStruct(element);
    }

    /// <summary>
    /// An args object as the serialized Struct a raise carries (<see cref="StructWireEncoder"/>: no Struct tree is
    /// built); null gives an empty one (no bytes). The same rules and errors as
    /// <see cref="ToStruct(object?, JsonSerializerOptions)"/>. The bytes live in a buffer of the calling thread that its
    /// next call reuses: copy them before then.
    /// </summary>
    public static ReadOnlySpan<byte> ToStructBytes(object? args, JsonSerializerOptions options)
    {
        if (args is null or JsonElement { ValueKind: JsonValueKind.Null or JsonValueKind.Undefined })
        {
            return [];
        }

        var scratch = JsonScratch.Rent(options);
        try
        {
            JsonSerializer.Serialize(scratch.Writer, args, args.GetType(), options);
            scratch.Writer.Flush();
            var json = scratch.Buffer.WrittenSpan;
            var reader = new Utf8JsonReader(json);
            reader.Read();
            return reader.TokenType switch
            {
                JsonTokenType.StartObject => StructWireEncoder.Encode(json, options.MaxDepth),
                JsonTokenType.Null or JsonTokenType.None => [],
                _ => throw new ArgumentException(
                    $"Event args must be a JSON object (an anonymous object, a record, a POCO or a dictionary); {args.GetType()} serialized as {KindOf(reader.TokenType)}.",
                    nameof(args)),
            };
        }
        finally
        {
            scratch.Return();
        }
    }

    /// <summary>The Struct as a JSON object (an empty object for null).</summary>
    public static JsonElement ToJson(Struct? args)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteStruct(writer, args);
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return document.RootElement.Clone();
    }

    private static JsonValueKind KindOf(JsonTokenType token) => token switch
    {
        JsonTokenType.StartArray => JsonValueKind.Array,
        JsonTokenType.String => JsonValueKind.String,
        JsonTokenType.Number => JsonValueKind.Number,
        JsonTokenType.True => JsonValueKind.True,
        JsonTokenType.False => JsonValueKind.False,
        _ => JsonValueKind.Undefined,
    };

    private static Struct ToStruct(JsonElement element)
    {
        var result = new Struct();
        foreach (var property in element.EnumerateObject())
        {
            result.Fields[property.Name] = ToValue(property.Value);
        }

        return result;
    }

    private static Value ToValue(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => Value.ForStruct(ToStruct(element)),
        JsonValueKind.Array => Value.ForList([.. element.EnumerateArray().Select(ToValue)]),
        JsonValueKind.String => Value.ForString(element.GetString()!),
        JsonValueKind.Number => ToNumber(element),
        JsonValueKind.True => Value.ForBool(true),
        JsonValueKind.False => Value.ForBool(false),
        _ => Value.ForNull(),
    };

    private static Value ToNumber(JsonElement element)
    {
        if (element.TryGetInt64(out var integer))
        {
            return integer is > MaxSafeInteger or < -MaxSafeInteger
                ? Value.ForString(integer.ToString(CultureInfo.InvariantCulture))
                : Value.ForNumber(integer);
        }

        var raw = element.GetRawText();
        if (raw.AsSpan().IndexOfAny('.', 'e', 'E') < 0)
        {
            // An integer beyond long (ulong, BigInteger, a long decimal): keep every digit.
            return Value.ForString(raw);
        }

        return Value.ForNumber(element.GetDouble());
    }

    /// <summary>The Struct as a JSON object (an empty object for null): what <see cref="ToJson"/> parses.</summary>
    internal static void WriteStruct(Utf8JsonWriter writer, Struct? value)
    {
        writer.WriteStartObject();
        if (value is not null)
        {
            foreach (var (name, field) in value.Fields)
            {
                writer.WritePropertyName(name);
                WriteValue(writer, field);
            }
        }

        writer.WriteEndObject();
    }

    private static void WriteValue(Utf8JsonWriter writer, Value? value)
    {
        switch (value?.KindCase)
        {
            case Value.KindOneofCase.StructValue:
                WriteStruct(writer, value.StructValue);
                break;
            case Value.KindOneofCase.ListValue:
                writer.WriteStartArray();
                foreach (var item in value.ListValue.Values)
                {
                    WriteValue(writer, item);
                }

                writer.WriteEndArray();
                break;
            case Value.KindOneofCase.StringValue:
                writer.WriteStringValue(value.StringValue);
                break;
            case Value.KindOneofCase.BoolValue:
                writer.WriteBooleanValue(value.BoolValue);
                break;
            case Value.KindOneofCase.NumberValue:
                WriteNumber(writer, value.NumberValue);
                break;
            default:
                writer.WriteNullValue();
                break;
        }
    }

    /// <summary>A Struct number as JSON: integral doubles up to 2^53 as integers, non-finite ones as null.</summary>
    internal static void WriteNumber(Utf8JsonWriter writer, double number)
    {
        if (!double.IsFinite(number))
        {
            writer.WriteNullValue();
        }
        else if (Math.Abs(number) <= MaxSafeInteger && number == Math.Floor(number))
        {
            // Integral doubles as integers, so they bind to int/long parameters.
            writer.WriteNumberValue((long)number);
        }
        else
        {
            writer.WriteNumberValue(number);
        }
    }

    /// <summary>A thread's reusable JSON output buffer and writer, so serializing a raise's args allocates no buffer.</summary>
    private sealed class JsonScratch
    {
        private const int KeepUpTo = 64 * 1024;

        [ThreadStatic]
        private static JsonScratch? current;

        private readonly JsonSerializerOptions options;
        private bool inUse;

        private JsonScratch(JsonSerializerOptions options)
        {
            this.options = options;
            Writer = new Utf8JsonWriter(Buffer, new JsonWriterOptions { Encoder = options.Encoder });
        }

        public ArrayBufferWriter<byte> Buffer { get; } = new(512);

        public Utf8JsonWriter Writer { get; }

        /// <summary>This thread's scratch for <paramref name="options"/>, emptied (a fresh one if it is busy: a converter raising).</summary>
        public static JsonScratch Rent(JsonSerializerOptions options)
        {
            var scratch = current;
            if (scratch is null || scratch.inUse || !ReferenceEquals(scratch.options, options))
            {
                scratch = new JsonScratch(options);
                current = scratch;
            }

            scratch.inUse = true;
            scratch.Buffer.ResetWrittenCount();
            scratch.Writer.Reset(scratch.Buffer);
            return scratch;
        }

        public void Return()
        {
            inUse = false;
            if (Buffer.Capacity > KeepUpTo && ReferenceEquals(current, this))
            {
                current = null; // a large raise's buffer is not kept for the thread's lifetime
            }
        }
    }
}
