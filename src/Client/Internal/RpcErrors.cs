using Grpc.Core;
using Polly.CircuitBreaker;

namespace HookBroker.Client.Internal;

/// <summary>Which gRPC failures are transient, and how failures become the SDK's typed exceptions.</summary>
internal static class RpcErrors
{
    /// <summary>UNAVAILABLE, DEADLINE_EXCEEDED and INTERNAL: retriable with the same idempotency key (see the proto).</summary>
    public static bool IsTransient(Exception? exception, CancellationToken cancellationToken) =>
        !cancellationToken.IsCancellationRequested
        && exception is RpcException { StatusCode: StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal };

    /// <summary>The typed exception for a failed raise of <paramref name="label"/>.</summary>
    public static Exception Map(Exception exception, string label, CancellationToken cancellationToken)
    {
        switch (exception)
        {
            case RpcException { StatusCode: StatusCode.Cancelled } when cancellationToken.IsCancellationRequested:
                return new OperationCanceledException($"The raise of '{label}' was canceled.", exception, cancellationToken);
            case RpcException rpc:
                var detail = string.IsNullOrEmpty(rpc.Status.Detail) ? rpc.StatusCode.ToString() : rpc.Status.Detail;
                var message = $"Raise of '{label}' failed with {rpc.StatusCode}: {detail}";
                return rpc.StatusCode switch
                {
                    StatusCode.InvalidArgument => new InvalidEventException(message, rpc),
                    StatusCode.ResourceExhausted => new BrokerLimitException(message, rpc),
                    StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal =>
                        new BrokerUnavailableException(rpc.StatusCode, message, rpc),
                    _ => new HookBrokerException(rpc.StatusCode, message, rpc),
                };
            case BrokenCircuitException broken:
                return new BrokerUnavailableException(
                    StatusCode.Unavailable,
                    $"Raise of '{label}' not attempted: the broker circuit is open after repeated failures.",
                    broken);
            default:
                return exception;
        }
    }
}
