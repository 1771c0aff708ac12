using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using HookBroker.Client.Internal;

namespace HookBroker.Client.Unit.Tests;

/// <summary>
/// The binding reads string, integer, double and boolean parameters straight from the args element instead of a
/// serializer pass; each such parameter must get what the serializer (with the hooks' options) gives, or the same
/// binding error.
/// </summary>
public sealed class ScalarBindingTests
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        NumberHandling = JsonNumberHandling.AllowReadingFromString,
    };

    private static readonly string[] Values =
    [
        "0", "1", "-5", "42", "2.5", "-0.5", "0.1", "1e300", "3000000000", "2147483647", "2147483648", "-2147483649",
        "9007199254740992", "9007199254740993", "\"12\"", "\"-7\"", "\"2.5\"", "\"x\"", "\"\"", "\"true\"", "true", "false",
        "\"é 😀\"", "[1]", "{\"a\":1}",
    ];

    public static TheoryData<string> Json() => [.. Values];

    [Theory(Timeout = 10_000)]
    [MemberData(nameof(Json))]
    public async Task Scalar_parameters_get_what_the_serializer_gives(string json)
    {
        // The value as a hook sees it: through the Struct (integers past 2^53 become strings) and back to JSON.
        var value = ArgsConverter.ToJson(ArgsConverter.ToStruct(new Dictionary<string, JsonElement> { ["v"] = JsonDocument.Parse(json).RootElement }, Options)).GetProperty("v");

        Assert.Equal(Expected<int>(value), await BindAsync<int>(value));
        Assert.Equal(Expected<int?>(value), await BindAsync<int?>(value));
        Assert.Equal(Expected<long>(value), await BindAsync<long>(value));
        Assert.Equal(Expected<long?>(value), await BindAsync<long?>(value));
        Assert.Equal(Expected<double>(value), await BindAsync<double>(value));
        Assert.Equal(Expected<double?>(value), await BindAsync<double?>(value));
        Assert.Equal(Expected<bool>(value), await BindAsync<bool>(value));
        Assert.Equal(Expected<bool?>(value), await BindAsync<bool?>(value));
        Assert.Equal(Expected<decimal>(value), await BindAsync<decimal>(value));
        // A string parameter takes a number's or a boolean's text (the binder's own rule), a string as the serializer reads it.
        var text = value.ValueKind is JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False ? Describe(value.GetRawText()) : Expected<string>(value);
        Assert.Equal(text, await BindAsync<string>(value));
    }

    private static string Expected<T>(JsonElement value)
    {
        try
        {
            return Describe(JsonSerializer.Deserialize<T>(value, Options));
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or NotSupportedException)
        {
            return "binding error";
        }
    }

    private static async Task<string> BindAsync<T>(JsonElement value)
    {
        object? got = null;
        var hooks = new Hooks(Options).Event("x", (T v) => got = v);
        try
        {
            await hooks.ExecuteAsync("x", new Dictionary<string, JsonElement> { ["v"] = value }, TestContext.Current.CancellationToken);
            return Describe(got);
        }
        catch (HookBindingException)
        {
            return "binding error";
        }
    }

    private static string Describe(object? value) => $"{value?.GetType().Name}:{Convert.ToString(value, CultureInfo.InvariantCulture)}";
}
