using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using HookBroker.Broker.Configuration;
using HookBroker.Broker.Storage;
using HookBroker.Wire;
using Microsoft.Extensions.Options;

namespace HookBroker.Broker.Core;

/// <summary>A raise that passed every check, ready to route and store.</summary>
public sealed record ValidRaise(
    string Label,
    ReadOnlyMemory<byte> Payload,
    string? OrderingKey,
    string? IdempotencyKey,
    string? Source,
    TimeSpan? WaitTimeout);

/// <summary>Checks a raise against the contract's rules and limits.</summary>
public sealed class RaiseValidator(IOptions<BrokerOptions> options)
{
    /// <summary>Most headers on one raise.</summary>
    public const int MaxHeaders = 64;

    /// <summary>Longest header key.</summary>
    public const int MaxHeaderKeyLength = 128;

    /// <summary>Longest header value.</summary>
    public const int MaxHeaderValueLength = 4096;

    /// <summary>Longest idempotency key, ordering key or source.</summary>
    public const int MaxKeyLength = 200;

    /// <summary>Longest wait.</summary>
    public static readonly TimeSpan MaxWait = TimeSpan.FromMinutes(5);

    private readonly BrokerOptions _options = options.Value;

    /// <summary>Validates <paramref name="request"/>; throws <see cref="BrokerException"/> naming the broken rule.</summary>
    /// <param name="request">The raise, its args still serialized: they are checked on the wire format and stored as they
    /// came, never parsed into a Struct.</param>
    /// <param name="timeLeft">Time until the call's deadline, if it has one (wait mode must end before it).</param>
    internal ValidRaise Validate(RawRaiseRequest request, TimeSpan? timeLeft)
    {
        if (LabelRules.CheckLabel(request.Event) is { } labelProblem)
        {
            throw BrokerException.Invalid(labelProblem);
        }

        var args = request.Args;
        if (args.Length > _options.MaxArgsBytes)
        {
            throw BrokerException.Exhausted(
                $"args are {args.Length} bytes serialized; the limit is {_options.MaxArgsBytes} bytes (HookBroker:MaxArgsBytes)");
        }

        var shape = StructWireValidator.Inspect(args.Span);
        if (shape.Problem is { } malformed)
        {
            throw BrokerException.Invalid($"args are not a valid google.protobuf.Struct (a JSON object): {malformed}");
        }

        if (shape.Depth > _options.MaxArgsDepth)
        {
            throw BrokerException.Invalid(
                $"args are nested {shape.Depth} levels deep; the limit is {_options.MaxArgsDepth} (HookBroker:MaxArgsDepth)");
        }

        var headers = RaiseHeaders.LastValueWins(request.Headers);
        CheckHeaders(headers);
        var idempotencyKey = CheckKey(request.IdempotencyKey, "idempotency_key");
        var orderingKey = CheckKey(request.OrderingKey, "ordering_key");
        var source = CheckKey(request.Source, "source");
        var wait = CheckWait(request.WaitTimeout, timeLeft);

        var payload = new StoredPayload { Args = args };
        for (var i = 0; i < headers.Count; i++)
        {
            payload.Headers.Add(new StoredHeader { Key = headers[i].Key, Value = headers[i].Value });
        }

        return new ValidRaise(request.Event, payload.ToByteArray(), orderingKey, idempotencyKey, source, wait);
    }

    private static void CheckHeaders(IReadOnlyList<HeaderEntry> headers)
    {
        if (headers.Count > MaxHeaders)
        {
            throw BrokerException.Invalid($"headers has {headers.Count} entries; at most {MaxHeaders}");
        }

        // Indexed loops: an enumerator of the list would be allocated for every raise, also without headers.
        for (var i = 0; i < headers.Count; i++)
        {
            var (key, value) = (headers[i].Key, headers[i].Value);
            if (key.Length is 0 or > MaxHeaderKeyLength)
            {
                throw BrokerException.Invalid($"headers key '{key}' must be 1-{MaxHeaderKeyLength} chars");
            }

            if (value.Length > MaxHeaderValueLength)
            {
                throw BrokerException.Invalid($"headers['{key}'] is {value.Length} chars; at most {MaxHeaderValueLength}");
            }
        }
    }

    private static string? CheckKey(string value, string field)
    {
        if (value.Length == 0)
        {
            return null;
        }

        return value.Length <= MaxKeyLength
            ? value
            : throw BrokerException.Invalid($"{field} is {value.Length} chars; at most {MaxKeyLength}");
    }

    private static TimeSpan? CheckWait(Duration? wait, TimeSpan? timeLeft)
    {
        if (wait is null || (wait.Seconds == 0 && wait.Nanos == 0))
        {
            return null;
        }

        if (wait.Seconds < 0 || wait.Nanos < 0 || wait.Nanos >= 1_000_000_000)
        {
            throw BrokerException.Invalid("wait_timeout must be a positive duration (e.g. \"5s\")");
        }

        if (WireDurations.Within(wait, MaxWait, "wait_timeout", out var timeout) is { } tooLong)
        {
            throw BrokerException.Invalid(tooLong);
        }

        if (timeLeft is { } left && timeout >= left)
        {
            throw BrokerException.Invalid(
                $"wait_timeout {timeout.TotalSeconds:0.###}s must be shorter than the call's deadline ({Math.Max(0, left.TotalSeconds):0.###}s left)");
        }

        return timeout;
    }
}
