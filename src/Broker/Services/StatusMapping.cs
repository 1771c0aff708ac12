using Grpc.Core;
using HookBroker.Broker.Core;
using HookBroker.Broker.Storage;

namespace HookBroker.Broker.Services;

/// <summary>The one place that decides which status a failure is answered with (whole calls and batch items alike).</summary>
internal static class StatusMapping
{
    /// <summary>What an unexpected failure is answered with: the client learns it may retry, not the broker's internals.</summary>
    public static readonly Status Internal = new(StatusCode.Internal, "internal broker error (logged); retry with backoff, with an idempotency key for raises");

    /// <summary>
    /// The status for <paramref name="exception"/>: a refused request keeps its code and message, storage full is
    /// RESOURCE_EXHAUSTED, storage unreachable or closing under a call (shutdown) is UNAVAILABLE, an RpcException keeps its status;
    /// anything else is <see cref="Internal"/> and <paramref name="unexpected"/> says to log it.
    /// </summary>
    public static Status ToStatus(Exception exception, out bool unexpected)
    {
        unexpected = false;
        switch (exception)
        {
            case RpcException rpc:
                return rpc.Status;
            case BrokerException refused:
                return new Status(refused.Code, refused.Message);
            case StorageFullException full:
                return new Status(StatusCode.ResourceExhausted, full.Message);
            case StorageUnavailableException unavailable:
                return new Status(StatusCode.Unavailable, unavailable.Message + "; retry with backoff (raises with their idempotency key)");
            case ObjectDisposedException:
                return new Status(StatusCode.Unavailable, BrokerException.ShuttingDown().Message);
            default:
                unexpected = true;
                return Internal;
        }
    }
}
