using HookBroker.Client.Internal;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Adds the HookBroker middleware to an ASP.NET Core pipeline.</summary>
public static class HookBrokerApplicationBuilderExtensions
{
    /// <summary>
    /// Fires <c>request_start</c> (args: method, path, request_id) and <c>request_end</c> (the same plus status_code and
    /// duration_ms) around every request that reaches this point of the pipeline: the app's hooks run inline, the remote
    /// raise is queued in the background (and skipped when no broker group listens). Put it early in the pipeline.
    /// </summary>
    /// <param name="app">The app's pipeline.</param>
    /// <returns>The pipeline, for chaining.</returns>
    /// <exception cref="InvalidOperationException"><c>services.AddHookBroker(...)</c> was not called.</exception>
    public static IApplicationBuilder UseHookBroker(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        if (app.ApplicationServices.GetService<HookBrokerApp>() is null)
        {
            throw new InvalidOperationException("UseHookBroker needs the HookBroker services: call builder.Services.AddHookBroker(...) first.");
        }

        return app.UseMiddleware<HookBrokerMiddleware>();
    }
}
