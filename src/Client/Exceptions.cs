using Grpc.Core;

namespace HookBroker.Client;

/// <summary>
/// The base of every error the broker (or the way to it) reports to the SDK. <see cref="StatusCode"/> is the gRPC status
/// the broker answered with (see the status codes in <c>proto/hookbroker/v1/hookbroker.proto</c>).
/// </summary>
public class HookBrokerException : Exception
{
    /// <summary>Creates an exception with <see cref="StatusCode.Unknown"/>.</summary>
    public HookBrokerException()
        : this(StatusCode.Unknown, "The broker call failed.")
    {
    }

    /// <summary>Creates an exception with <see cref="StatusCode.Unknown"/>.</summary>
    public HookBrokerException(string message)
        : this(StatusCode.Unknown, message)
    {
    }

    /// <summary>Creates an exception with <see cref="StatusCode.Unknown"/>.</summary>
    public HookBrokerException(string message, Exception? innerException)
        : this(StatusCode.Unknown, message, innerException)
    {
    }

    /// <summary>Creates an exception for a call that ended with <paramref name="statusCode"/>.</summary>
    public HookBrokerException(StatusCode statusCode, string message, Exception? innerException = null)
        : base(message, innerException) => StatusCode = statusCode;

    /// <summary>The gRPC status the call ended with (<see cref="StatusCode.OK"/> for <see cref="HookFailedException"/>).</summary>
    public StatusCode StatusCode { get; }
}

/// <summary>
/// The broker refused the raise as invalid (<c>INVALID_ARGUMENT</c>): a bad label, args nested too deep, bad headers or
/// keys, a wait timeout out of range. The message names the field and the rule. Not retriable as is.
/// </summary>
public sealed class InvalidEventException : HookBrokerException
{
    /// <summary>Creates the exception.</summary>
    public InvalidEventException()
        : base(StatusCode.InvalidArgument, "The broker refused the event as invalid.")
    {
    }

    /// <summary>Creates the exception.</summary>
    public InvalidEventException(string message)
        : base(StatusCode.InvalidArgument, message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public InvalidEventException(string message, Exception? innerException)
        : base(StatusCode.InvalidArgument, message, innerException)
    {
    }
}

/// <summary>
/// A broker limit was hit (<c>RESOURCE_EXHAUSTED</c>): the args size, a group's backlog, storage. The message names the
/// limit. Retriable later; the SDK does not retry it by itself.
/// </summary>
public sealed class BrokerLimitException : HookBrokerException
{
    /// <summary>Creates the exception.</summary>
    public BrokerLimitException()
        : base(StatusCode.ResourceExhausted, "A broker limit was hit.")
    {
    }

    /// <summary>Creates the exception.</summary>
    public BrokerLimitException(string message)
        : base(StatusCode.ResourceExhausted, message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public BrokerLimitException(string message, Exception? innerException)
        : base(StatusCode.ResourceExhausted, message, innerException)
    {
    }
}

/// <summary>
/// The broker could not be reached or kept failing (<c>UNAVAILABLE</c>, <c>DEADLINE_EXCEEDED</c>, <c>INTERNAL</c>) after
/// the client's retries, or the client's circuit breaker is open. A later raise with the same idempotency key is stored
/// at most once.
/// </summary>
public sealed class BrokerUnavailableException : HookBrokerException
{
    /// <summary>Creates the exception.</summary>
    public BrokerUnavailableException()
        : base(StatusCode.Unavailable, "The broker is unavailable.")
    {
    }

    /// <summary>Creates the exception.</summary>
    public BrokerUnavailableException(string message)
        : base(StatusCode.Unavailable, message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public BrokerUnavailableException(string message, Exception? innerException)
        : base(StatusCode.Unavailable, message, innerException)
    {
    }

    /// <summary>Creates the exception for a call that ended with <paramref name="statusCode"/>.</summary>
    public BrokerUnavailableException(StatusCode statusCode, string message, Exception? innerException)
        : base(statusCode, message, innerException)
    {
    }
}

/// <summary>
/// A wait-mode raise found that a remote hook failed: at least one group's outcome is
/// <see cref="HookOutcome.Failed"/> or <see cref="HookOutcome.DeadLettered"/>. This is the remote form of a hook's error
/// reaching the caller of <c>execute_event</c>. The event was stored; a failed event keeps its normal retry course.
/// </summary>
public sealed class HookFailedException : HookBrokerException
{
    /// <summary>Creates the exception.</summary>
    public HookFailedException()
        : this("A remote hook failed.")
    {
    }

    /// <summary>Creates the exception.</summary>
    public HookFailedException(string message)
        : this(message, (Exception?)null)
    {
    }

    /// <summary>Creates the exception.</summary>
    public HookFailedException(string message, Exception? innerException)
        : base(StatusCode.OK, message, innerException)
    {
        Label = string.Empty;
        Result = new RaiseResult(string.Empty, 0, false, []);
    }

    /// <summary>Creates the exception for the raise of <paramref name="label"/> that answered <paramref name="result"/>.</summary>
    public HookFailedException(string label, RaiseResult result)
        : base(StatusCode.OK, Describe(label, result))
    {
        ArgumentNullException.ThrowIfNull(result);
        Label = label;
        Result = result;
    }

    /// <summary>The label that was raised.</summary>
    public string Label { get; }

    /// <summary>The raise's full answer: the event id and every group's outcome.</summary>
    public RaiseResult Result { get; }

    /// <summary>The groups whose outcome is <see cref="HookOutcome.Failed"/> or <see cref="HookOutcome.DeadLettered"/>.</summary>
    public IReadOnlyList<HookGroupOutcome> Failures =>
        [.. Result.Outcomes.Where(o => o.Outcome is HookOutcome.Failed or HookOutcome.DeadLettered)];

    private static string Describe(string label, RaiseResult result)
    {
        var failures = result.Outcomes
            .Where(o => o.Outcome is HookOutcome.Failed or HookOutcome.DeadLettered)
            .Select(o => o.Outcome == HookOutcome.Failed
                ? $"group '{o.Group}' failed on attempt {o.Attempt}{(o.WillRetry ? " (will retry)" : "")}: {o.Error}"
                : $"group '{o.Group}' dead-lettered it after attempt {o.Attempt}: {o.Error}");
        return $"A hook for '{label}' (event {result.EventId}) failed: {string.Join("; ", failures)}";
    }
}

/// <summary>
/// A hook's parameters could not be bound from the event's args: a required argument is missing, or a value cannot be
/// converted to the parameter's type. A worker rejects such a delivery (dead letter, reason "rejected", no retry):
/// retrying cannot fix the args.
/// </summary>
public sealed class HookBindingException : Exception
{
    /// <summary>Creates the exception.</summary>
    public HookBindingException()
        : this("The hook's parameters could not be bound from the event's args.")
    {
    }

    /// <summary>Creates the exception.</summary>
    public HookBindingException(string message)
        : this(message, null)
    {
    }

    /// <summary>Creates the exception.</summary>
    public HookBindingException(string message, Exception? innerException)
        : base(message, innerException) => ParameterName = string.Empty;

    /// <summary>Creates the exception for the parameter <paramref name="parameterName"/>.</summary>
    public HookBindingException(string parameterName, string message, Exception? innerException)
        : base(message, innerException) => ParameterName = parameterName;

    /// <summary>The parameter that could not be bound.</summary>
    public string ParameterName { get; }
}
