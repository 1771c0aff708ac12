using Grpc.Core;

namespace HookBroker.Broker.Core;

/// <summary>A request the broker refuses, with the gRPC status it maps to and a message naming the rule or limit.</summary>
public sealed class BrokerException : Exception
{
    /// <summary>Creates the exception.</summary>
    public BrokerException(StatusCode code, string message)
        : base(message) => Code = code;

    /// <summary>Creates the exception (for serializers and analyzers).</summary>
    public BrokerException()
        : this(StatusCode.Internal, "broker error")
    {
    }

    /// <summary>Creates the exception (for serializers and analyzers).</summary>
    public BrokerException(string message)
        : this(StatusCode.Internal, message)
    {
    }

    /// <summary>Creates the exception (for serializers and analyzers).</summary>
    public BrokerException(string message, Exception innerException)
        : base(message, innerException) => Code = StatusCode.Internal;

    /// <summary>The status code the client gets.</summary>
    public StatusCode Code { get; }

    /// <summary>INVALID_ARGUMENT: the request breaks a rule.</summary>
    public static BrokerException Invalid(string message) => new(StatusCode.InvalidArgument, message);

    /// <summary>RESOURCE_EXHAUSTED: a limit was hit.</summary>
    public static BrokerException Exhausted(string message) => new(StatusCode.ResourceExhausted, message);

    /// <summary>FAILED_PRECONDITION: the stream was used out of order.</summary>
    public static BrokerException Precondition(string message) => new(StatusCode.FailedPrecondition, message);

    /// <summary>NOT_FOUND: no such group.</summary>
    public static BrokerException NotFound(string message) => new(StatusCode.NotFound, message);

    /// <summary>UNAVAILABLE: the broker is shutting down.</summary>
    public static BrokerException ShuttingDown() => new(StatusCode.Unavailable, "the broker is shutting down; retry with backoff (reconnect to this or another node)");
}
