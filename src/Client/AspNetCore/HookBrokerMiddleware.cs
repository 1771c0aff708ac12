using Microsoft.AspNetCore.Http;

namespace HookBroker.Client.Internal;

/// <summary>
/// Fires <c>request_start</c> (method, path, request_id) before the rest of the pipeline and <c>request_end</c> (the
/// same plus status_code and duration_ms) after it, the app's hooks inline. The remote raise is only queued, so the
/// broker never adds a round trip to the request.
/// </summary>
internal sealed class HookBrokerMiddleware(RequestDelegate next, HookBrokerApp app, TimeProvider time)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var started = time.GetTimestamp();
        var method = context.Request.Method;
        var path = context.Request.Path.HasValue ? context.Request.Path.Value : "/";
        var requestId = context.TraceIdentifier;
        await app.RaiseDefaultEventAsync(
            HookBrokerApp.RequestStartEvent,
            new Dictionary<string, object?>(3, StringComparer.Ordinal) { ["method"] = method, ["path"] = path, ["request_id"] = requestId },
            context.RequestAborted);

        try
        {
            await next(context);
        }
        catch (Exception)
        {
            // The server answers 500 for an unhandled exception (unless the response had already started).
            await RequestEndAsync(context, method, path, requestId, context.Response.HasStarted ? context.Response.StatusCode : StatusCodes.Status500InternalServerError, started);
            throw;
        }

        await RequestEndAsync(context, method, path, requestId, context.Response.StatusCode, started);
    }

    private ValueTask RequestEndAsync(HttpContext context, string method, string path, string requestId, int statusCode, long started) =>
        app.RaiseDefaultEventAsync(
            HookBrokerApp.RequestEndEvent,
            new Dictionary<string, object?>(5, StringComparer.Ordinal)
            {
                ["method"] = method,
                ["path"] = path,
                ["status_code"] = statusCode,
                ["duration_ms"] = time.GetElapsedTime(started).TotalMilliseconds,
                ["request_id"] = requestId,
            },
            context.RequestAborted);
}
