using System.ComponentModel;
using System.Runtime.CompilerServices;
using HookBroker.BlackBox.Tests.Infrastructure;

namespace HookBroker.Docker.Tests.Infrastructure;

/// <summary>
/// What the Docker tests need from the machine, checked once: a Docker engine that answers, and the base images the
/// Dockerfiles build from. When something is missing every Docker test skips, naming the reason; it never fails.
/// </summary>
internal static class DockerEnvironment
{
    /// <summary>Base image of the runtime stage (build argument BASE); default: the local stand-in.</summary>
    public static string BaseImage { get; } = Setting("HOOKBROKER_BASE_IMAGE", "local/dotnet-aspnet:10.0");

    /// <summary>Image of the build stage (build argument SDK_IMAGE); default: the local stand-in.</summary>
    public static string SdkImage { get; } = Setting("HOOKBROKER_SDK_IMAGE", "local/dotnet-sdk:10.0");

    private static readonly TimeSpan CheckTimeout = TimeSpan.FromSeconds(30);
    private static readonly Lazy<Task<string?>> MissingReason = new(FindMissingAsync);

    /// <summary>
    /// Testcontainers for .NET 4.x negotiates an API version this machine's dockerd (20.10) rejects, and its resource
    /// reaper image cannot be pulled here (no registry): fixtures clean up after themselves instead. Set only where
    /// unset, so a developer's own settings win.
    /// </summary>
    [ModuleInitializer]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Usage", "CA2255", Justification = "Process-wide settings Testcontainers reads before any test runs.")]
    internal static void Initialize()
    {
        SetIfUnset("DOCKER_API_VERSION", "1.41");
        SetIfUnset("TESTCONTAINERS_RYUK_DISABLED", "true");
    }

    /// <summary>Skips the calling test, with the reason, unless Docker and the base images are there.</summary>
    public static async Task RequireAsync()
    {
        if (await MissingReason.Value is { } reason)
        {
            Assert.Skip($"no Docker engine: {reason}");
        }
    }

    private static async Task<string?> FindMissingAsync()
    {
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("HOOKBROKER_SKIP_DOCKER")))
        {
            return "HOOKBROKER_SKIP_DOCKER is set";
        }

        CommandResult info;
        try
        {
            info = await ExternalCommand.RunAsync("docker", ["info", "--format", "{{.ServerVersion}}"], CheckTimeout, CancellationToken.None);
        }
        catch (Win32Exception e)
        {
            return $"the docker CLI is not installed ({e.Message}); ../shared/docker/offline-images.sh installs it";
        }
        catch (TimeoutException)
        {
            return $"`docker info` did not answer within {CheckTimeout.TotalSeconds:0} s";
        }

        if (info.ExitCode != 0)
        {
            return $"`docker info` failed ({FirstLine(info.StdErr)}); as root, ../shared/docker/offline-images.sh starts dockerd";
        }

        foreach (var image in new[] { BaseImage, SdkImage })
        {
            var inspect = await ExternalCommand.RunAsync("docker", ["image", "inspect", "--format", "{{.Id}}", image], CheckTimeout, CancellationToken.None);
            if (inspect.ExitCode != 0)
            {
                return $"base image {image} is missing (no registry here): ../shared/docker/offline-images.sh builds the local "
                    + "stand-ins; HOOKBROKER_BASE_IMAGE / HOOKBROKER_SDK_IMAGE choose others";
            }
        }

        return null;
    }

    private static string FirstLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "no output";

    private static string Setting(string name, string fallback) =>
        Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : fallback;

    private static void SetIfUnset(string name, string value)
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(name)))
        {
            Environment.SetEnvironmentVariable(name, value);
        }
    }
}
